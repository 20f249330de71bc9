//! FATE 2.x OSX queue mode (fate-spec §2.4): the `org.ppc.ptp.PrivateTransferTransport`
//! service (push, pop, peek, release) that FATE's OSX federation backend calls, and
//! `PrivateTransferProtocol.invoke`, through which OSX brokers forward a push to the next site.
//! Every router serves both next to eggroll's `DataTransferService`.
//!
//! What FATE does (`python/fate/arch/federation/backends/osx/_mq_channel.py`,
//! `_federation.py`): the sender calls `push(PushInbound{topic, payload})` on its site's router
//! with gRPC metadata `x-ptp-target-node-id` (destination party), `x-ptp-from-node-id` (its
//! own party), `x-ptp-session-id` (federation session id), `x-ptp-trace-id` and
//! `x-ptp-tech-provider-code: FATE`; topics are `{sid}-{role}-{pid}-{peer_role}-{peer_pid}-{name}`.
//! The receiver calls `pop(PopInbound{topic: the mirror topic, timeout: ms})` on its own router
//! and raises `LookupError` when the code is [`code::TIMEOUT`]; on session end it calls
//! `release(ReleaseInbound{})`, which drops every queue of the session.
//!
//! What a router does (as the OSX broker, `java/osx/osx-broker/.../provider/FateTechProvider.java`,
//! `ptp/ProduceService.java`, `ptp/ConsumeService.java`, `ptp/ReleaseService.java`):
//! - `push` for one of its `self_party`: append the payload to the queue of (session, topic);
//!   otherwise forward it by the route table (role `default`) as OSX does between sites:
//!   `PrivateTransferProtocol.invoke(Inbound{payload: the PushInbound})` with the `x-ptp-*`
//!   metadata and `x-ptp-uri` naming the push method ([`FORWARD_PUSH_URI`]).
//! - `pop` takes the oldest message of (session, topic), waiting up to `timeout` ms (the
//!   configured default when 0); `peek` returns it without taking it (OSX's peek consumes; the
//!   interconnection spec's does not); `release` drops the session's queue of `topic`, or all
//!   its queues when `topic` is empty. Pop, peek and release are local: never forwarded.
//! - Errors are answered in band, as OSX does: gRPC status OK with an OSX code (see [`code`])
//!   and the message `PARTY_{self party}:{what failed, naming the hop}`.
//!
//! Bounds: a payload over `max_frame_size` is refused before it is queued (and a request over
//! it plus [`REQUEST_SLACK`] is refused by the decoder before it is buffered), each queue holds
//! at most [`OsxConfig::queue_bytes`], all queues together at most `mailbox_bytes`, at most
//! [`OsxConfig::max_queues`] queues exist; queues left unused for
//! [`OsxConfig::idle_timeout`] are dropped (OSX `queue.max.free.time`).
//!
//! With TLS, a push is accepted only if the client certificate backs its source party: the
//! claimed `x-ptp-from-node-id` (FATE) or `x-ptp-source-node-id` (OSX), and the source party in
//! a FATE-shaped topic; pop, peek and release need a certificate of one of the site's own
//! parties. (FATE's python client speaks plaintext only; OSX serves these four methods only on
//! its plaintext port.)

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::Notify;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use crate::client::{Client, describe, hop_error};
use crate::envelope::MAX_HOPS;
use crate::ptp::private_transfer_protocol_client::PrivateTransferProtocolClient;
use crate::ptp::private_transfer_protocol_server::{
    PrivateTransferProtocol, PrivateTransferProtocolServer,
};
use crate::ptp::private_transfer_transport_server::{
    PrivateTransferTransport, PrivateTransferTransportServer,
};
use crate::ptp::{
    Inbound, Outbound, PeekInbound, PopInbound, PushInbound, ReleaseInbound, TransportOutbound,
};
use crate::route::Routes;
use crate::tls::{self, TlsConfig};
use crate::{GrpcError, Limits};

/// OSX status codes (`TransportOutbound.code`, `Outbound.code`). The `E…` codes are the
/// interconnection spec's, as listed in OSX `org.fedai.osx.core.constant.StatusCode`
/// (`java/osx/osx-core/.../constant/StatusCode.java`); the short numeric ones are OSX's own.
pub mod code {
    /// Success (`PTP_SUCCESS`).
    pub const SUCCESS: &str = "E0000000000";
    /// A required field is missing or malformed (`PARAM_ERROR` / `PTP_INVALID_REQUEST`).
    pub const INVALID_REQUEST: &str = "E0000000400";
    /// The client certificate does not back the request (spec table: not authorised).
    pub const UNAUTHORIZED: &str = "E0000000403";
    /// An `invoke` for a method a fate-rs router does not serve (spec table: no such resource).
    pub const NOT_FOUND: &str = "E0000000404";
    /// A payload over the router's limit (spec table: `BodyTooLarge`).
    pub const BODY_TOO_LARGE: &str = "E0000000413";
    /// No message within pop's timeout (`PTP_TIME_OUT`, answered with `CONSUME_MSG_TIMEOUT`
    /// by OSX's `UnaryConsumer`); FATE raises `LookupError` on it.
    pub const TIMEOUT: &str = "E0000000601";
    /// The next hop could not be reached or failed (`NET_ERROR`).
    pub const NET_ERROR: &str = "E0000000607";
    /// The TLS handshake with the next hop failed (spec table: certificate check failed).
    pub const CERT_ERROR: &str = "E0000000603";
    /// Queue memory is full (spec table: message buffer full).
    pub const BUFFER_FULL: &str = "E0000000700";
    /// No route to the target party (`PROXY_ROUTER_ERROR`, OSX's `NoRouterInfoException`).
    pub const NO_ROUTE: &str = "130";
    /// The queue a pop waited on was released (`TRANSFER_QUEUE_NOT_FIND`).
    pub const QUEUE_NOT_FOUND: &str = "138";
    /// The push passed too many routers (`CYCLE_ROUTE_ERROR`).
    pub const CYCLE_ROUTE: &str = "145";
}

/// gRPC metadata keys. FATE's client sends `x-ptp-from-node-id`; OSX brokers read and send
/// `x-ptp-source-node-id` (`PtpHttpHeader.FromNodeID`); a router accepts either.
pub mod header {
    /// Destination party.
    pub const TARGET_NODE_ID: &str = "x-ptp-target-node-id";
    /// Destination institution (OSX falls back to it when the node id is missing).
    pub const TARGET_INST_ID: &str = "x-ptp-target-inst-id";
    /// Source party as FATE's python client names it.
    pub const FROM_NODE_ID: &str = "x-ptp-from-node-id";
    /// Source party as OSX brokers name it.
    pub const SOURCE_NODE_ID: &str = "x-ptp-source-node-id";
    /// Source institution, FATE's spelling.
    pub const FROM_INST_ID: &str = "x-ptp-from-inst-id";
    /// Source institution, OSX's spelling.
    pub const SOURCE_INST_ID: &str = "x-ptp-source-inst-id";
    /// Federation session id: queues are per (session, topic).
    pub const SESSION_ID: &str = "x-ptp-session-id";
    /// Trace id (`{unix_ts}_{rand}` from FATE), passed on.
    pub const TRACE_ID: &str = "x-ptp-trace-id";
    /// `FATE` from FATE's client, passed on.
    pub const TECH_PROVIDER_CODE: &str = "x-ptp-tech-provider-code";
    /// The topic, set by OSX when it forwards.
    pub const TOPIC: &str = "x-ptp-topic";
    /// The method an `invoke` carries.
    pub const URI: &str = "x-ptp-uri";
}

/// The method path of a queue push (OSX `UriConstants.PUSH`).
pub const PUSH_URI: &str = "/org.ppc.ptp.PrivateTransferTransport/push";
/// `x-ptp-uri` of a forwarded push, as OSX writes it (`UrlUtil.buildUrl("grpcs://",
/// "fedai.org", PUSH)`); a router accepts [`PUSH_URI`] with or without the scheme and host.
pub const FORWARD_PUSH_URI: &str = "grpcs://fedai.org/org.ppc.ptp.PrivateTransferTransport/push";
/// Room for the topic and metadata map of a request beyond its payload.
pub const REQUEST_SLACK: usize = 64 << 10;
/// Longest topic or session id accepted.
pub const MAX_NAME_LEN: usize = 1024;

/// gRPC metadata key counting the routers a forwarded push passed.
const HOPS_METADATA: &str = "x-fate-rs-hops";
/// How often unused and idle queues are looked for (OSX `queue.check.interval`).
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// FATE's roles, to recognise a FATE-shaped topic.
const FATE_ROLES: &[&str] = &["guest", "host", "arbiter", "local"];

/// Settings of a router's OSX queues. The payload limit is [`Limits::max_frame_size`] and
/// the memory of all queues together [`Limits::mailbox_bytes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsxConfig {
    /// Most bytes of payload one queue (one session and topic) holds.
    pub queue_bytes: usize,
    /// Most queues held at once.
    pub max_queues: usize,
    /// How long a pop without a timeout waits (OSX `consume.msg.waiting.timeout`, 1 h).
    pub default_pop_timeout: Duration,
    /// Queues without waiters unused this long are dropped with their messages (OSX
    /// `queue.max.free.time`, 12 h).
    pub idle_timeout: Duration,
}

impl Default for OsxConfig {
    fn default() -> Self {
        OsxConfig {
            queue_bytes: 512 << 20,
            max_queues: 65_536,
            default_pop_timeout: Duration::from_millis(3_600_000),
            idle_timeout: Duration::from_millis(43_200_000),
        }
    }
}

impl OsxConfig {
    pub(crate) fn check(&self, limits: &Limits) -> Result<(), GrpcError> {
        if self.queue_bytes < limits.max_frame_size || self.max_queues == 0 {
            return Err(GrpcError::Config(format!(
                "OSX queues: queue_bytes {} must be at least max_frame_size {} and max_queues \
                 {} positive",
                self.queue_bytes, limits.max_frame_size, self.max_queues
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Queues.

/// What waiters of a queue share with it.
#[derive(Debug, Default)]
struct Shared {
    arrived: Arc<Notify>,
    /// Set when the queue is released: its waiters stop.
    released: AtomicBool,
}

#[derive(Debug)]
struct Queue {
    messages: VecDeque<Bytes>,
    bytes: usize,
    /// One reference here, one per waiting pop.
    shared: Arc<Shared>,
    last_used: Instant,
}

impl Queue {
    fn unused(&self) -> bool {
        self.messages.is_empty() && Arc::strong_count(&self.shared) == 1
    }

    fn close(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
        self.shared.arrived.notify_waiters();
    }
}

#[derive(Debug)]
struct State {
    /// session -> topic -> queue.
    sessions: HashMap<String, HashMap<String, Queue>>,
    queues: usize,
    bytes: usize,
    last_sweep: Instant,
}

/// Why a push (or a pop creating its queue) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    QueueFull { held: usize, limit: usize },
    AllFull { held: usize, budget: usize },
    TooManyQueues { limit: usize },
}

impl Refusal {
    fn describe(&self, session: &str, topic: &str, incoming: usize) -> String {
        match self {
            Refusal::QueueFull { held, limit } => format!(
                "queue of topic {topic} in session {session} is full: it holds {held} bytes and \
                 {incoming} more would exceed its limit of {limit} bytes (queue_bytes)"
            ),
            Refusal::AllFull { held, budget } => format!(
                "queues are full: they hold {held} bytes and {incoming} more (topic {topic}, \
                 session {session}) would exceed the budget of {budget} bytes (mailbox_bytes)"
            ),
            Refusal::TooManyQueues { limit } => format!(
                "too many queues: {limit} exist (max_queues); topic {topic} of session \
                 {session} would be one more"
            ),
        }
    }
}

/// What a pop got.
#[derive(Debug)]
enum Popped {
    Message(Bytes),
    Timeout,
    Released,
    Refused(Refusal),
}

/// The queues of one router.
#[derive(Debug)]
struct Queues {
    state: Mutex<State>,
    config: OsxConfig,
    budget: usize,
}

impl State {
    fn queue(&mut self, session: &str, topic: &str) -> Option<&mut Queue> {
        self.sessions.get_mut(session)?.get_mut(topic)
    }

    /// The queue of (session, topic), created if it does not exist yet.
    fn entry(
        &mut self,
        session: &str,
        topic: &str,
        max_queues: usize,
        now: Instant,
    ) -> Result<&mut Queue, Refusal> {
        let exists = self
            .sessions
            .get(session)
            .is_some_and(|topics| topics.contains_key(topic));
        if !exists {
            if self.queues >= max_queues {
                return Err(Refusal::TooManyQueues { limit: max_queues });
            }
            self.queues += 1;
        }
        let queue = self
            .sessions
            .entry(session.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_insert_with(|| Queue {
                messages: VecDeque::new(),
                bytes: 0,
                shared: Arc::default(),
                last_used: now,
            });
        queue.last_used = now;
        Ok(queue)
    }

    /// Drops the queue if it holds nothing and nobody waits on it.
    fn remove_if_unused(&mut self, session: &str, topic: &str) {
        let Some(topics) = self.sessions.get_mut(session) else {
            return;
        };
        if topics.get(topic).is_some_and(Queue::unused) {
            topics.remove(topic);
            self.queues -= 1;
            if topics.is_empty() {
                self.sessions.remove(session);
            }
        }
    }

    /// Drops unused queues and those without waiters idle for `idle`, at most once per
    /// [`SWEEP_INTERVAL`].
    fn sweep(&mut self, now: Instant, idle: Duration) {
        if now.duration_since(self.last_sweep) < SWEEP_INTERVAL {
            return;
        }
        self.last_sweep = now;
        let (mut queues, mut bytes) = (0, 0);
        self.sessions.retain(|session, topics| {
            topics.retain(|topic, queue| {
                let no_waiters = Arc::strong_count(&queue.shared) == 1;
                let idle = no_waiters && now.duration_since(queue.last_used) >= idle;
                if idle && !queue.messages.is_empty() {
                    tracing::warn!(
                        %session, %topic, messages = queue.messages.len(), bytes = queue.bytes,
                        "Dropped an OSX queue unused for the idle timeout."
                    );
                }
                let keep = !(queue.unused() || idle);
                if keep {
                    queues += 1;
                    bytes += queue.bytes;
                } else {
                    queue.close();
                }
                keep
            });
            !topics.is_empty()
        });
        self.queues = queues;
        self.bytes = bytes;
    }
}

impl Queues {
    fn new(config: OsxConfig, budget: usize) -> Self {
        Queues {
            state: Mutex::new(State {
                sessions: HashMap::new(),
                queues: 0,
                bytes: 0,
                last_sweep: Instant::now(),
            }),
            config,
            budget,
        }
    }

    fn push(&self, session: &str, topic: &str, payload: Bytes) -> Result<(), Refusal> {
        let len = payload.len();
        let now = Instant::now();
        let mut state = self.state.lock();
        state.sweep(now, self.config.idle_timeout);
        let held = state.bytes;
        if held + len > self.budget {
            return Err(Refusal::AllFull {
                held,
                budget: self.budget,
            });
        }
        let limit = self.config.queue_bytes;
        let queue = state.entry(session, topic, self.config.max_queues, now)?;
        if queue.bytes + len > limit {
            let held = queue.bytes;
            state.remove_if_unused(session, topic);
            return Err(Refusal::QueueFull { held, limit });
        }
        queue.messages.push_back(payload);
        queue.bytes += len;
        // Wakes the pops waiting now; a pop registers while holding the lock, so none is
        // missed.
        queue.shared.arrived.notify_waiters();
        state.bytes += len;
        Ok(())
    }

    async fn pop(&self, session: &str, topic: &str, wait: Duration) -> Popped {
        let deadline = tokio::time::Instant::now() + wait;
        let mut waited: Option<Arc<Shared>> = None;
        loop {
            let arrived = {
                let mut state = self.state.lock();
                if waited
                    .as_ref()
                    .is_some_and(|s| s.released.load(Ordering::SeqCst))
                {
                    return Popped::Released;
                }
                let now = Instant::now();
                state.sweep(now, self.config.idle_timeout);
                let queue = match state.entry(session, topic, self.config.max_queues, now) {
                    Ok(queue) => queue,
                    Err(refusal) => return Popped::Refused(refusal),
                };
                if let Some(message) = queue.messages.pop_front() {
                    queue.bytes -= message.len();
                    state.bytes -= message.len();
                    drop(waited.take());
                    state.remove_if_unused(session, topic);
                    return Popped::Message(message);
                }
                if tokio::time::Instant::now() >= deadline {
                    drop(waited.take());
                    state.remove_if_unused(session, topic);
                    return Popped::Timeout;
                }
                let shared = queue.shared.clone();
                // Created under the lock: a push after this point wakes it.
                let arrived = shared.arrived.clone().notified_owned();
                waited = Some(shared);
                arrived
            };
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }

    fn peek(&self, session: &str, topic: &str) -> Option<Bytes> {
        let mut state = self.state.lock();
        let queue = state.queue(session, topic)?;
        queue.last_used = Instant::now();
        queue.messages.front().cloned()
    }

    /// Drops the session's queue of `topic`, or all its queues when `topic` is `None`;
    /// returns how many queues and bytes were dropped.
    fn release(&self, session: &str, topic: Option<&str>) -> (usize, usize) {
        let mut state = self.state.lock();
        let Some(topics) = state.sessions.get_mut(session) else {
            return (0, 0);
        };
        let dropped: Vec<Queue> = match topic {
            Some(topic) => topics.remove(topic).into_iter().collect(),
            None => topics.drain().map(|(_, queue)| queue).collect(),
        };
        if topics.is_empty() {
            state.sessions.remove(session);
        }
        let bytes: usize = dropped.iter().map(|q| q.bytes).sum();
        state.queues -= dropped.len();
        state.bytes -= bytes;
        for queue in &dropped {
            queue.close();
        }
        (dropped.len(), bytes)
    }
}

// ---------------------------------------------------------------------------------------------
// The services.

/// The `x-ptp-*` metadata of a request.
#[derive(Debug, Default, Clone)]
struct PtpHeaders {
    session: String,
    target: String,
    source: String,
    trace: String,
    tech_provider: String,
    uri: String,
    hops: u8,
}

fn metadata_text(md: &MetadataMap, key: &str) -> String {
    md.get(key)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

impl PtpHeaders {
    fn read(md: &MetadataMap) -> Self {
        let first = |keys: &[&str]| {
            keys.iter()
                .map(|k| metadata_text(md, k))
                .find(|v| !v.is_empty())
                .unwrap_or_default()
        };
        PtpHeaders {
            session: metadata_text(md, header::SESSION_ID),
            // OSX `ContextUtil.assableContextFromInbound`: node ids fall back to inst ids.
            target: first(&[header::TARGET_NODE_ID, header::TARGET_INST_ID]),
            source: first(&[
                header::FROM_NODE_ID,
                header::SOURCE_NODE_ID,
                header::FROM_INST_ID,
                header::SOURCE_INST_ID,
            ]),
            trace: metadata_text(md, header::TRACE_ID),
            tech_provider: metadata_text(md, header::TECH_PROVIDER_CODE),
            uri: metadata_text(md, header::URI),
            hops: metadata_text(md, HOPS_METADATA).parse().unwrap_or(0),
        }
    }
}

/// The method path of an `x-ptp-uri`: `grpcs://fedai.org/a/b` -> `/a/b` (OSX
/// `UrlUtil.parseUri`).
fn uri_path(uri: &str) -> &str {
    match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => uri,
    }
}

/// The source party of a FATE queue topic `{session}-{role}-{party}-{peer_role}-{peer_party}-
/// {name}` (`_federation.py` `_maybe_create_topic_and_replication`), if `topic` has that form.
fn fate_topic_source<'a>(session: &str, topic: &'a str) -> Option<&'a str> {
    let rest = topic.strip_prefix(session)?.strip_prefix('-')?;
    let mut parts = rest.splitn(5, '-');
    let (role, party, peer_role, peer_party, name) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let shaped = FATE_ROLES.contains(&role)
        && FATE_ROLES.contains(&peer_role)
        && !party.is_empty()
        && !peer_party.is_empty()
        && !name.is_empty();
    shaped.then_some(party)
}

fn reply(code: &str, message: impl Into<String>, payload: Bytes) -> TransportOutbound {
    TransportOutbound {
        metadata: HashMap::new(),
        payload,
        code: code.to_string(),
        message: message.into(),
    }
}

struct Inner {
    queues: Queues,
    client: Arc<Client>,
    routes: Routes,
    tls: Option<TlsConfig>,
    max_payload: usize,
    addr: SocketAddr,
}

/// Both OSX services of a router, sharing its queues.
#[derive(Clone)]
pub(crate) struct OsxService(Arc<Inner>);

impl OsxService {
    pub(crate) fn new(
        config: OsxConfig,
        limits: &Limits,
        client: Arc<Client>,
        routes: Routes,
        tls: Option<TlsConfig>,
        addr: SocketAddr,
    ) -> Self {
        OsxService(Arc::new(Inner {
            queues: Queues::new(config, limits.mailbox_bytes),
            client,
            routes,
            tls,
            max_payload: limits.max_frame_size,
            addr,
        }))
    }

    /// The gRPC servers, with decoding bounded by the payload limit.
    pub(crate) fn servers(
        &self,
    ) -> (
        PrivateTransferTransportServer<OsxService>,
        PrivateTransferProtocolServer<OsxService>,
    ) {
        let limit = self.0.max_payload.saturating_add(REQUEST_SLACK);
        (
            PrivateTransferTransportServer::new(self.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            PrivateTransferProtocolServer::new(self.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
    }
}

impl Inner {
    /// `PARTY_{self}:{text}`, OSX's error message form (`ErrorMessageUtil`).
    fn error(&self, self_party: &[String], code: &str, text: impl AsRef<str>) -> TransportOutbound {
        let message = match self_party.first() {
            Some(party) => format!("PARTY_{party}:{}", text.as_ref()),
            None => text.as_ref().to_string(),
        };
        reply(code, message, Bytes::new())
    }

    fn this_router(&self, self_party: &[String]) -> String {
        if self_party.is_empty() {
            format!("router at {}", self.addr)
        } else {
            format!("router of {} at {}", self_party.join(","), self.addr)
        }
    }

    /// Checks session and topic of a request.
    fn names(
        &self,
        what: &str,
        headers: &PtpHeaders,
        topic: &str,
        topic_required: bool,
    ) -> Result<(), String> {
        if headers.session.is_empty() {
            return Err(format!(
                "{what} has no {}: queues are per session and topic",
                header::SESSION_ID
            ));
        }
        if topic_required && topic.is_empty() {
            return Err(format!("{what} has no topic"));
        }
        for (field, value) in [(header::SESSION_ID, &headers.session[..]), ("topic", topic)] {
            if value.len() > MAX_NAME_LEN {
                return Err(format!(
                    "{what}: {field} is {} bytes long, over the limit of {MAX_NAME_LEN}",
                    value.len()
                ));
            }
        }
        Ok(())
    }

    /// With TLS: the certificate must back every source party the push names.
    fn check_source(
        &self,
        tls: &TlsConfig,
        cert: Option<&rustls_pki_types::CertificateDer<'static>>,
        headers: &PtpHeaders,
        topic: &str,
        self_party: &[String],
    ) -> Result<(), String> {
        let from_topic = fate_topic_source(&headers.session, topic);
        let claimed = (!headers.source.is_empty()).then_some(headers.source.as_str());
        match (claimed, from_topic) {
            (None, None) => Err(format!(
                "TLS: the push names no source party: set {} (or {}) to the sending party",
                header::FROM_NODE_ID,
                header::SOURCE_NODE_ID
            )),
            (Some(claimed), Some(in_topic)) if claimed != in_topic => Err(format!(
                "{} {claimed} differs from the source party {in_topic} of topic {topic}",
                header::FROM_NODE_ID
            )),
            (claimed, in_topic) => {
                for party in claimed.into_iter().chain(in_topic) {
                    tls::check_peer(tls, cert, party, self_party)?;
                }
                Ok(())
            }
        }
    }

    async fn push(
        &self,
        headers: &PtpHeaders,
        request: PushInbound,
        cert: Option<&rustls_pki_types::CertificateDer<'static>>,
    ) -> TransportOutbound {
        let table = self.routes.current();
        let self_party = table.self_party();
        let topic = request.topic.as_str();
        if let Err(text) = self.names("push", headers, topic, true) {
            return self.error(self_party, code::INVALID_REQUEST, text);
        }
        let target = headers.target.as_str();
        if target.is_empty() {
            return self.error(
                self_party,
                code::INVALID_REQUEST,
                format!(
                    "push of topic {topic} has no {} (the destination party)",
                    header::TARGET_NODE_ID
                ),
            );
        }
        let len = request.payload.len();
        if len > self.max_payload {
            return self.error(
                self_party,
                code::BODY_TOO_LARGE,
                format!(
                    "payload of {len} bytes on topic {topic} is over the limit of {} bytes \
                     (max_frame_size) at {}",
                    self.max_payload,
                    self.this_router(self_party)
                ),
            );
        }
        if let Some(tls) = &self.tls
            && let Err(text) = self.check_source(tls, cert, headers, topic, self_party)
        {
            return self.error(self_party, code::UNAUTHORIZED, text);
        }
        if table.is_self(target) {
            // Copied out of the request buffer so that the queue's byte count is its memory.
            let payload = Bytes::copy_from_slice(&request.payload);
            return match self.queues.push(&headers.session, topic, payload) {
                Ok(()) => {
                    tracing::debug!(
                        session = %headers.session, %topic, bytes = len, source = %headers.source,
                        trace = %headers.trace, "Queued an OSX message."
                    );
                    reply(code::SUCCESS, "success", Bytes::new())
                }
                Err(refusal) => self.error(
                    self_party,
                    code::BUFFER_FULL,
                    format!(
                        "{} at {}",
                        refusal.describe(&headers.session, topic, len),
                        self.this_router(self_party)
                    ),
                ),
            };
        }
        self.forward(headers, request, &table).await
    }

    /// Sends the push to the next hop as OSX does between sites (`TransferUtil.redirect`).
    async fn forward(
        &self,
        headers: &PtpHeaders,
        request: PushInbound,
        table: &crate::route::RouteTable,
    ) -> TransportOutbound {
        let self_party = table.self_party();
        let target = headers.target.as_str();
        let topic = request.topic.clone();
        let hop = match table.lookup(target, crate::route::DEFAULT_KEY) {
            Ok(hop) => hop,
            Err(e) => {
                return self.error(
                    self_party,
                    code::NO_ROUTE,
                    format!("{}: {e}", self.this_router(self_party)),
                );
            }
        };
        if headers.hops >= MAX_HOPS {
            return self.error(
                self_party,
                code::CYCLE_ROUTE,
                format!(
                    "routing loop: push of topic {topic} to party {target} passed {MAX_HOPS} \
                     routers; the last, {}, would send it to {} ({})",
                    self.this_router(self_party),
                    hop.route.address(),
                    hop.describe()
                ),
            );
        }
        let channel = match self.client.channel(&hop, target, self_party) {
            Ok(channel) => channel,
            Err(e) => {
                return self.error(
                    self_party,
                    code::NET_ERROR,
                    format!("{}: {e}", self.this_router(self_party)),
                );
            }
        };
        let mut forward = Request::new(Inbound {
            metadata: HashMap::new(),
            payload: request.encode_to_vec().into(),
        });
        let md = forward.metadata_mut();
        let pairs = [
            (header::URI, FORWARD_PUSH_URI),
            (header::TARGET_NODE_ID, target),
            (header::SOURCE_NODE_ID, headers.source.as_str()),
            (header::FROM_NODE_ID, headers.source.as_str()),
            (header::SESSION_ID, headers.session.as_str()),
            (header::TOPIC, topic.as_str()),
            (header::TRACE_ID, headers.trace.as_str()),
            (header::TECH_PROVIDER_CODE, headers.tech_provider.as_str()),
        ];
        for (key, value) in pairs {
            // Values came in as metadata (or, the topic, may not fit: the receiver reads the
            // topic from the payload anyway).
            if !value.is_empty()
                && let Ok(value) = MetadataValue::try_from(value)
            {
                md.insert(key, value);
            }
        }
        md.insert(
            HOPS_METADATA,
            MetadataValue::from(u32::from(headers.hops) + 1),
        );
        let limit = self.max_payload.saturating_add(REQUEST_SLACK);
        let mut grpc = PrivateTransferProtocolClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX);
        let dst = format!("party {target}");
        match grpc.invoke(forward).await {
            Ok(response) => {
                let out = response.into_inner();
                if out.code != code::SUCCESS {
                    // The downstream message names where it failed; the prefix names the way.
                    let text = hop_error(&hop, &dst, &Status::unknown(out.message));
                    return self.error(self_party, &out.code, text);
                }
                TransportOutbound {
                    metadata: out.metadata,
                    payload: out.payload,
                    code: out.code,
                    message: out.message,
                }
            }
            Err(status) => {
                let text = self
                    .client
                    .hop_error(&hop, &dst, target, self_party, &status);
                let code = if describe(&status).1 {
                    code::CERT_ERROR
                } else {
                    code::NET_ERROR
                };
                self.error(self_party, code, text)
            }
        }
    }

    /// The checks of a call served here (peek, pop, release): under TLS the caller is one of
    /// this site's parties, and the names the call needs are there. `Some` is the refusal
    /// to answer.
    fn refuse_local(
        &self,
        what: &str,
        cert: Option<&rustls_pki_types::CertificateDer<'static>>,
        headers: &PtpHeaders,
        topic: &str,
        topic_required: bool,
        self_party: &[String],
    ) -> Option<TransportOutbound> {
        if let Err(text) = self.check_local(cert, self_party) {
            return Some(self.error(self_party, code::UNAUTHORIZED, text));
        }
        self.names(what, headers, topic, topic_required)
            .err()
            .map(|text| self.error(self_party, code::INVALID_REQUEST, text))
    }

    /// With TLS, only this site's parties may read or drop its queues.
    fn check_local(
        &self,
        cert: Option<&rustls_pki_types::CertificateDer<'static>>,
        self_party: &[String],
    ) -> Result<(), String> {
        match &self.tls {
            Some(tls) => tls::check_local(tls, cert, self_party),
            None => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl PrivateTransferTransport for OsxService {
    async fn peek(
        &self,
        request: Request<PeekInbound>,
    ) -> Result<Response<TransportOutbound>, Status> {
        let inner = &self.0;
        let cert = tls::peer_leaf(&request);
        let headers = PtpHeaders::read(request.metadata());
        let topic = request.into_inner().topic;
        let table = inner.routes.current();
        let self_party = table.self_party();
        if let Some(reply) =
            inner.refuse_local("peek", cert.as_ref(), &headers, &topic, true, self_party)
        {
            return Ok(Response::new(reply));
        }
        // As OSX: success either way; an empty payload means no message yet.
        Ok(Response::new(
            match inner.queues.peek(&headers.session, &topic) {
                Some(message) => reply(code::SUCCESS, "success", message),
                None => reply(code::SUCCESS, "no message", Bytes::new()),
            },
        ))
    }

    async fn pop(
        &self,
        request: Request<PopInbound>,
    ) -> Result<Response<TransportOutbound>, Status> {
        let inner = &self.0;
        let cert = tls::peer_leaf(&request);
        let headers = PtpHeaders::read(request.metadata());
        let PopInbound { topic, timeout } = request.into_inner();
        let table = inner.routes.current();
        let self_party = table.self_party();
        if let Some(reply) =
            inner.refuse_local("pop", cert.as_ref(), &headers, &topic, true, self_party)
        {
            return Ok(Response::new(reply));
        }
        // OSX `ConsumeService`: a timeout of 0 or less means `consume.msg.waiting.timeout`.
        let wait = match u64::try_from(timeout) {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => inner.queues.config.default_pop_timeout,
        };
        let session = &headers.session;
        Ok(Response::new(
            match inner.queues.pop(session, &topic, wait).await {
                Popped::Message(message) => reply(code::SUCCESS, "success", message),
                Popped::Timeout => reply(
                    code::TIMEOUT,
                    format!(
                        "CONSUME_MSG_TIMEOUT: no message on topic {topic} of session {session} \
                         at {} within {} ms",
                        inner.this_router(self_party),
                        wait.as_millis()
                    ),
                    Bytes::new(),
                ),
                Popped::Released => inner.error(
                    self_party,
                    code::QUEUE_NOT_FOUND,
                    format!("session {session} was released while a pop waited on topic {topic}"),
                ),
                Popped::Refused(refusal) => inner.error(
                    self_party,
                    code::BUFFER_FULL,
                    format!(
                        "{} at {}",
                        refusal.describe(session, &topic, 0),
                        inner.this_router(self_party)
                    ),
                ),
            },
        ))
    }

    async fn push(
        &self,
        request: Request<PushInbound>,
    ) -> Result<Response<TransportOutbound>, Status> {
        let cert = tls::peer_leaf(&request);
        let headers = PtpHeaders::read(request.metadata());
        let push = request.into_inner();
        Ok(Response::new(
            self.0.push(&headers, push, cert.as_ref()).await,
        ))
    }

    async fn release(
        &self,
        request: Request<ReleaseInbound>,
    ) -> Result<Response<TransportOutbound>, Status> {
        let inner = &self.0;
        let cert = tls::peer_leaf(&request);
        let headers = PtpHeaders::read(request.metadata());
        let topic = request.into_inner().topic;
        let table = inner.routes.current();
        let self_party = table.self_party();
        if let Some(reply) = inner.refuse_local(
            "release",
            cert.as_ref(),
            &headers,
            &topic,
            false,
            self_party,
        ) {
            return Ok(Response::new(reply));
        }
        let topic = (!topic.is_empty()).then_some(topic.as_str());
        let (queues, bytes) = inner.queues.release(&headers.session, topic);
        tracing::debug!(session = %headers.session, ?topic, queues, bytes, "Released OSX queues.");
        Ok(Response::new(reply(code::SUCCESS, "success", Bytes::new())))
    }
}

#[tonic::async_trait]
impl PrivateTransferProtocol for OsxService {
    type transportStream = tokio_stream::Empty<Result<Outbound, Status>>;

    async fn transport(
        &self,
        _request: Request<Streaming<Inbound>>,
    ) -> Result<Response<Self::transportStream>, Status> {
        Err(Status::unimplemented(
            "PrivateTransferProtocol.transport (OSX stream mode) is not served by fate-rs \
             routers: use PrivateTransferTransport (queue mode) or eggroll's DataTransferService",
        ))
    }

    async fn invoke(&self, request: Request<Inbound>) -> Result<Response<Outbound>, Status> {
        let inner = &self.0;
        let cert = tls::peer_leaf(&request);
        let headers = PtpHeaders::read(request.metadata());
        let inbound = request.into_inner();
        let out = if uri_path(&headers.uri) == PUSH_URI {
            match PushInbound::decode(inbound.payload) {
                Ok(push) => inner.push(&headers, push, cert.as_ref()).await,
                Err(e) => {
                    let table = inner.routes.current();
                    inner.error(
                        table.self_party(),
                        code::INVALID_REQUEST,
                        format!("invoke payload is not a PushInbound: {e}"),
                    )
                }
            }
        } else {
            let table = inner.routes.current();
            inner.error(
                table.self_party(),
                code::NOT_FOUND,
                format!(
                    "{} {:?} is not served by fate-rs routers (only {PUSH_URI})",
                    header::URI,
                    headers.uri
                ),
            )
        };
        Ok(Response::new(Outbound {
            metadata: out.metadata,
            payload: out.payload,
            code: out.code,
            message: out.message,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(queue_bytes: usize, budget: usize, max_queues: usize) -> Queues {
        Queues::new(
            OsxConfig {
                queue_bytes,
                max_queues,
                ..OsxConfig::default()
            },
            budget,
        )
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn fate_topics_name_their_source() {
        let sid = "202401011200000000_psi_0_0";
        assert_eq!(
            fate_topic_source(sid, &format!("{sid}-guest-9999-host-10000-psi.ids")),
            Some("9999")
        );
        assert_eq!(
            fate_topic_source(sid, &format!("{sid}-host-10000-guest-9999-a-b-c")),
            Some("10000"),
            "dashes in the name are kept"
        );
        assert_eq!(fate_topic_source(sid, "other-guest-9999-host-1-x"), None);
        assert_eq!(
            fate_topic_source(sid, &format!("{sid}-king-9999-host-1-x")),
            None
        );
        assert_eq!(
            fate_topic_source(sid, &format!("{sid}-guest-9999-host-1")),
            None
        );
    }

    #[test]
    fn uris_are_parsed_like_osx() {
        assert_eq!(uri_path(FORWARD_PUSH_URI), PUSH_URI);
        assert_eq!(uri_path(PUSH_URI), PUSH_URI);
        assert_eq!(uri_path("grpcs://fedai.org"), "");
    }

    #[test]
    fn queues_are_fifo_per_session_and_topic_and_bounded() {
        let q = queues(10, 15, 3);
        q.push("s", "t", Bytes::from_static(b"12345")).unwrap();
        q.push("s", "t", Bytes::from_static(b"678")).unwrap();
        q.push("s2", "t", Bytes::from_static(b"abc")).unwrap();
        assert_eq!(
            q.push("s", "t", Bytes::from_static(b"xyz")),
            Err(Refusal::QueueFull { held: 8, limit: 10 })
        );
        assert_eq!(
            q.push("s3", "t", Bytes::from_static(b"12345")),
            Err(Refusal::AllFull {
                held: 11,
                budget: 15
            })
        );
        q.push("s3", "t", Bytes::from_static(b"1")).unwrap();
        assert_eq!(
            q.push("s4", "t", Bytes::new()),
            Err(Refusal::TooManyQueues { limit: 3 })
        );
        let rt = rt();
        let pop = |s: &str| match rt.block_on(q.pop(s, "t", Duration::from_millis(10))) {
            Popped::Message(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(q.peek("s", "t").as_deref(), Some(&b"12345"[..]));
        assert_eq!(pop("s"), "12345");
        assert_eq!(pop("s"), "678");
        assert!(matches!(
            rt.block_on(q.pop("s", "t", Duration::from_millis(10))),
            Popped::Timeout
        ));
        let state = q.state.lock();
        assert_eq!(
            (state.queues, state.bytes),
            (2, 4),
            "the drained queue is gone"
        );
    }

    #[test]
    fn a_waiting_pop_gets_a_later_push_and_release_stops_waiters() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let q = Arc::new(queues(100, 100, 10));
        let waiter = {
            let q = q.clone();
            rt.spawn(async move { q.pop("s", "t", Duration::from_secs(20)).await })
        };
        std::thread::sleep(Duration::from_millis(50));
        q.push("s", "t", Bytes::from_static(b"late")).unwrap();
        match rt.block_on(waiter).unwrap() {
            Popped::Message(m) => assert_eq!(m, "late"),
            other => panic!("{other:?}"),
        }

        let waiter = {
            let q = q.clone();
            rt.spawn(async move { q.pop("s", "u", Duration::from_secs(20)).await })
        };
        std::thread::sleep(Duration::from_millis(50));
        q.push("s", "other", Bytes::from_static(b"x")).unwrap();
        assert_eq!(q.release("s", None), (2, 1));
        assert!(matches!(rt.block_on(waiter).unwrap(), Popped::Released));
        let state = q.state.lock();
        assert_eq!((state.queues, state.bytes), (0, 0));
    }
}
