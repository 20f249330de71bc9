//! The pushing side: connections to next hops, chunked `push` streams, retries with backoff,
//! and error texts that name the hop.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fate_federation::CancelToken;
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::envelope::Envelope;
use crate::proto::data_transfer_service_client::DataTransferServiceClient;
use crate::proto::{Data, Metadata, Packet};
use crate::route::{Hop, Routes};
use crate::tls::{TlsConfig, read_pem};

/// Connection, chunking and retry settings of the pushing side.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time to establish a connection (TCP and TLS) to a next hop.
    pub connect_timeout: Duration,
    /// Time one push may take end to end (sent as the gRPC deadline).
    pub rpc_timeout: Duration,
    /// Bytes of frame per packet of a push stream. Routers forward packet by packet, so
    /// smaller chunks mean less store-and-forward delay per hop, larger ones less work per
    /// byte. The default carries a slice of FATE's default 1 MiB `max_message_size` in one
    /// packet, as rollsite pushes 1 MiB chunks (fate-spec §2.3).
    pub chunk_size: usize,
    /// HTTP/2 stream window (the connection window is twice this), for receiving on servers
    /// and sending on clients. FATE sets 128 MiB (fate-spec §2.3); 16 MiB covers a 1 Gbit/s
    /// link at 130 ms round trip.
    pub window_size: u32,
    /// Largest HTTP/2 DATA frame a server (or client) accepts (16 KiB to 16 MiB - 1). Large
    /// frames mean fewer frames, reads and wake-ups per byte.
    pub max_frame_size: u32,
    /// What to do when a push fails.
    pub retry: RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(60),
            chunk_size: fate_federation::wire::max_frame_len(
                fate_federation::DEFAULT_MAX_MESSAGE_SIZE,
            ),
            window_size: 16 << 20,
            max_frame_size: 1 << 20,
            retry: RetryPolicy::default(),
        }
    }
}

impl ClientOptions {
    /// The HTTP/2 and TCP settings on a client endpoint.
    pub(crate) fn tune(&self, endpoint: Endpoint) -> Endpoint {
        endpoint
            .tcp_nodelay(true)
            .initial_stream_window_size(self.window_size)
            .initial_connection_window_size(self.window_size.saturating_mul(2))
            .max_frame_size(self.max_frame_size.clamp(16 << 10, (16 << 20) - 1))
    }

    /// A server builder with the same HTTP/2 and TCP settings.
    pub(crate) fn server_builder(&self) -> tonic::transport::Server {
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(self.window_size)
            .initial_connection_window_size(self.window_size.saturating_mul(2))
            .max_frame_size(self.max_frame_size.clamp(16 << 10, (16 << 20) - 1))
    }
}

/// Retries of a push that was not acknowledged. Pushes are idempotent (the destination
/// ignores a frame whose key it already has), so every failure that does not prove the push
/// can never succeed is retried: see [`retryable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first. The default has no limit: the send deadline
    /// decides how long a peer may be unreachable (a router restarting, a partition) before
    /// the push fails.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled after each retry.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Whether a failed push is worth another attempt.
///
/// A push counts as delivered only when its acknowledgement arrives; anything else may have
/// lost the frame, and pushing it again is harmless because the destination's mailbox ignores
/// a key it already holds. So the only failures not retried are the verdicts of a peer that
/// read the push and refused it for a reason a retry cannot change: a bad frame or packet
/// (`INVALID_ARGUMENT`, `OUT_OF_RANGE`), a refused certificate (`PERMISSION_DENIED`,
/// `UNAUTHENTICATED`), a missing route or a routing loop (`FAILED_PRECONDITION`), a method
/// the peer does not serve (`UNIMPLEMENTED`), and `NOT_FOUND`/`ALREADY_EXISTS`.
///
/// In particular the statuses a dying peer or connection produces are retried: tonic maps an
/// HTTP/2 `RST_STREAM` or `GOAWAY` with `NO_ERROR`, `INTERNAL_ERROR` or `PROTOCOL_ERROR` to
/// `INTERNAL`, a broken pipe or connection reset to `UNKNOWN`, a closed connection to
/// `CANCELLED`, a refused one to `UNAVAILABLE`. Treating `INTERNAL` as final lost a slice
/// when a router was killed mid-transfer.
pub(crate) fn retryable(code: Code) -> bool {
    !matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::OutOfRange
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::Unimplemented
            | Code::NotFound
            | Code::AlreadyExists
    )
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ChannelKey {
    address: String,
    secure: bool,
    server_name: String,
    cert_chain_file: Option<std::path::PathBuf>,
    private_key_file: Option<std::path::PathBuf>,
    ca_file: Option<std::path::PathBuf>,
}

/// Connections to next hops, shared by all pushes of a router or transport.
#[derive(Debug)]
pub(crate) struct Client {
    tls: Option<TlsConfig>,
    options: ClientOptions,
    max_packet_size: usize,
    channels: Mutex<HashMap<ChannelKey, Channel>>,
}

impl Client {
    pub fn new(
        tls: Option<TlsConfig>,
        options: ClientOptions,
        max_packet_size: usize,
    ) -> Arc<Self> {
        Arc::new(Client {
            tls,
            options,
            max_packet_size,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// The name the next hop's certificate must carry: the route's `hostname`, else the
    /// matched party entry's `<party>.<domain>`, else (a `default` entry) this site's first
    /// party, else the destination party.
    fn server_name(
        &self,
        hop: &Hop,
        dst_party_id: &str,
        self_party: &[String],
        domain: &str,
    ) -> String {
        if let Some(name) = &hop.route.hostname {
            return name.clone();
        }
        let party = hop
            .party_entry
            .as_deref()
            .or(self_party.first().map(String::as_str))
            .unwrap_or(dst_party_id);
        if domain.is_empty() {
            return hop.route.ip.clone();
        }
        format!("{party}.{domain}")
    }

    /// The server name a secure hop is connected with (sent as SNI, so an SNI proxy such as
    /// Traffic Server tunnels by it), empty for a plaintext hop.
    fn tls_server_name(&self, hop: &Hop, dst_party_id: &str, self_party: &[String]) -> String {
        if !hop.route.is_secure {
            return String::new();
        }
        let domain = self.tls.as_ref().map(|t| t.domain.as_str()).unwrap_or("");
        self.server_name(hop, dst_party_id, self_party, domain)
    }

    /// [`hop_error`], with the TLS server name added to a TLS failure: through an SNI proxy
    /// the name also chose the tunnel, so it tells which one failed.
    pub fn hop_error(
        &self,
        hop: &Hop,
        dst: &dyn std::fmt::Display,
        dst_party_id: &str,
        self_party: &[String],
        status: &Status,
    ) -> String {
        let mut text = hop_error(hop, dst, status);
        if describe(status).1 {
            let name = self.tls_server_name(hop, dst_party_id, self_party);
            text.push_str(&format!(" (TLS server name {name})"));
        }
        text
    }

    /// A (lazily connecting) channel to the hop.
    pub fn channel(
        &self,
        hop: &Hop,
        dst_party_id: &str,
        self_party: &[String],
    ) -> Result<Channel, String> {
        let route = &hop.route;
        let key = ChannelKey {
            address: route.address(),
            secure: route.is_secure,
            server_name: self.tls_server_name(hop, dst_party_id, self_party),
            cert_chain_file: route.cert_chain_file.clone(),
            private_key_file: route.private_key_file.clone(),
            ca_file: route.ca_file.clone(),
        };
        if let Some(channel) = self.channels.lock().get(&key) {
            return Ok(channel.clone());
        }
        let scheme = if route.is_secure { "https" } else { "http" };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{}", key.address))
            .map_err(|e| format!("bad address {}: {e}", key.address))?
            .connect_timeout(self.options.connect_timeout)
            .timeout(self.options.rpc_timeout)
            .http2_keep_alive_interval(Duration::from_secs(60))
            .keep_alive_while_idle(false);
        let mut endpoint = self.options.tune(endpoint);
        if route.is_secure {
            let tls = self.route_tls(hop)?;
            endpoint = endpoint
                .tls_config(tls.client_config(&key.server_name))
                .map_err(|e| format!("TLS settings for {}: {}", key.address, chain(&e)))?;
        }
        let channel = endpoint.connect_lazy();
        self.channels.lock().insert(key, channel.clone());
        Ok(channel)
    }

    /// The TLS identity for a secure hop: the route's own PEM files, else this site's.
    fn route_tls(&self, hop: &Hop) -> Result<TlsConfig, String> {
        let route = &hop.route;
        let mut tls = match &self.tls {
            Some(tls) => tls.clone(),
            None if route.cert_chain_file.is_some() && route.ca_file.is_some() => TlsConfig {
                cert_chain_pem: Vec::new(),
                private_key_pem: Vec::new(),
                ca_pem: Vec::new(),
                domain: String::new(),
                trusted_relays: Vec::new(),
            },
            None => {
                return Err(format!(
                    "the route to {} is_secure but this site has no TLS certificate \
                     configured and the route gives no certChainFile/privateKeyFile/caFile",
                    route.address()
                ));
            }
        };
        if let (Some(cert), Some(key)) = (&route.cert_chain_file, &route.private_key_file) {
            tls.cert_chain_pem = read_pem(cert).map_err(|e| e.to_string())?;
            tls.private_key_pem = read_pem(key).map_err(|e| e.to_string())?;
        }
        if let Some(ca) = &route.ca_file {
            tls.ca_pem = read_pem(ca).map_err(|e| e.to_string())?;
        }
        Ok(tls)
    }

    pub fn grpc(&self, channel: Channel) -> DataTransferServiceClient<Channel> {
        DataTransferServiceClient::new(channel)
            .max_decoding_message_size(self.max_packet_size)
            .max_encoding_message_size(usize::MAX)
    }

    /// One push of a whole frame, cut into packets of `chunk_size`.
    async fn push_once(
        &self,
        channel: Channel,
        env: &Envelope,
        frame: Bytes,
    ) -> Result<Metadata, Status> {
        let chunk = self.options.chunk_size.max(1);
        let first_len = frame.len().min(chunk);
        let first = env.packet(frame.slice(..first_len));
        let len = frame.len();
        let rest = (first_len..len).step_by(chunk).map(move |start| Packet {
            header: None,
            body: Some(Data {
                key: String::new(),
                value: frame.slice(start..(start + chunk).min(len)),
            }),
        });
        let stream = tokio_stream::iter(std::iter::once(first).chain(rest));
        self.grpc(channel)
            .push(stream)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Pushes a frame towards `env.key.dst` by the route table, retrying transient failures
    /// until `deadline`, or until `cancel` is set (the task that sends was stopped). The error
    /// names the hop that failed.
    pub async fn push(
        &self,
        routes: &Routes,
        env: &Envelope,
        frame: Bytes,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<(), String> {
        let dst = &env.key.dst;
        let policy = &self.options.retry;
        let mut backoff = policy.initial_backoff;
        let mut attempt = 0u32;
        let stopped =
            |attempt: u32| format!("push of {} canceled after {attempt} attempts", env.key);
        loop {
            if cancel.is_canceled() {
                return Err(stopped(attempt));
            }
            attempt += 1;
            let table = routes.current();
            let hop = table
                .lookup(dst.party_id.as_str(), dst.role.as_str())
                .map_err(|e| e.to_string())?;
            let channel = self.channel(&hop, dst.party_id.as_str(), table.self_party())?;
            let budget = deadline.saturating_duration_since(Instant::now());
            let result = tokio::select! {
                result = tokio::time::timeout(budget, self.push_once(channel, env, frame.clone())) => {
                    match result {
                        Ok(result) => result,
                        Err(_) => Err(Status::deadline_exceeded(format!(
                            "no acknowledgement within the send timeout ({budget:?} left)"
                        ))),
                    }
                }
                () = canceled(cancel) => return Err(stopped(attempt)),
            };
            let status = match result {
                Ok(_) => return Ok(()),
                Err(status) => status,
            };
            let text = self.hop_error(
                &hop,
                dst,
                dst.party_id.as_str(),
                table.self_party(),
                &status,
            );
            let tls_failure = describe(&status).1;
            let now = Instant::now();
            if tls_failure
                || !retryable(status.code())
                || attempt >= policy.max_attempts
                || now + backoff >= deadline
            {
                return Err(if attempt > 1 {
                    format!("{text} (gave up after {attempt} attempts)")
                } else {
                    text
                });
            }
            tracing::debug!(attempt, error = %text, "Push failed; retrying.");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = canceled(cancel) => return Err(stopped(attempt)),
            }
            backoff = (backoff * 2).min(policy.max_backoff);
        }
    }
}

/// Resolves once `cancel` is set (the token is a flag, so it is polled).
async fn canceled(cancel: &CancelToken) {
    while !cancel.is_canceled() {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

/// How often a waiting push or send looks at its cancel token.
pub(crate) const CANCEL_POLL: Duration = fate_federation::mailbox::CANCEL_POLL;

/// `route to host:10000 via 127.0.0.1:9371 (router of 10000): connection refused`. A
/// downstream message that already starts with the same hop (a routing loop) is not prefixed
/// again.
pub(crate) fn hop_error(hop: &Hop, dst: &dyn std::fmt::Display, status: &Status) -> String {
    let prefix = format!(
        "route to {dst} via {} ({}): ",
        hop.route.address(),
        hop.describe()
    );
    let (text, _) = describe(status);
    if text.starts_with(&prefix) {
        text
    } else {
        format!("{prefix}{text}")
    }
}

/// The most telling text of a status, and whether it is a TLS failure (not worth retrying):
/// the operating system's or TLS library's message when the status came from the
/// connection, otherwise the status message.
pub(crate) fn describe(status: &Status) -> (String, bool) {
    let mut source = status.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_text(io);
        }
        source = err.source();
    }
    let message = status.message();
    let text = if message.is_empty() {
        format!("{:?}", status.code())
    } else {
        message.to_string()
    };
    (text, false)
}

fn io_text(io: &std::io::Error) -> (String, bool) {
    use std::io::ErrorKind;
    let text = match io.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset".to_string(),
        ErrorKind::TimedOut => "connection timed out".to_string(),
        // rustls reports handshake failures as InvalidData wrapping its own error.
        ErrorKind::InvalidData => match io.get_ref() {
            Some(inner) => return (format!("TLS handshake failed: {inner}"), true),
            None => io.to_string(),
        },
        _ => io.to_string(),
    };
    (text, false)
}

/// An error and its sources, joined with `: `.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let s = inner.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_peer_refusal_stops_the_retries() {
        // What a router killed mid-stream looks like to the sender, as tonic reports it.
        let dying = [
            Code::Internal,    // RST_STREAM/GOAWAY with NO_ERROR or INTERNAL_ERROR
            Code::Unknown,     // broken pipe, connection reset
            Code::Cancelled,   // connection closed, RST_STREAM(CANCEL)
            Code::Unavailable, // connection refused while it restarts
            Code::DeadlineExceeded,
            Code::DataLoss,
            Code::ResourceExhausted, // a full mailbox
            Code::Aborted,           // another copy of the frame is still arriving
        ];
        for code in dying {
            assert!(retryable(code), "{code:?} must be retried");
        }
        let refusals = [
            Code::InvalidArgument,
            Code::OutOfRange,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::NotFound,
            Code::AlreadyExists,
        ];
        for code in refusals {
            assert!(!retryable(code), "{code:?} is a final refusal");
        }
    }
}
