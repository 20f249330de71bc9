//! [`GrpcTransport`]: the federation [`Transport`] of a site reached over gRPC.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::collections::HashMap;

use fate_federation::wire::{self, Head};
use fate_federation::{CancelToken, FederationError, MessageKey, Transport};
use parking_lot::{Condvar, Mutex};

use crate::client::{CANCEL_POLL, Client, ClientOptions};
use crate::command::{self, Commands, FATEFLOW_ROLE};
use crate::envelope::Envelope;
use crate::route::Routes;
use crate::router::{Router, RouterConfig};
use crate::tls::TlsConfig;
use crate::{GrpcError, Limits};
use fate_federation::mailbox::{Mailbox, Refusal};

/// Settings of a [`GrpcTransport`].
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Address of the transport's own server, where its router delivers frames; port 0 picks
    /// a free port (see [`GrpcTransport::local_addr`]).
    pub listen: SocketAddr,
    /// Route table: `self_party` lists the parties this transport receives for; the other
    /// entries say where to push (usually `default` → this site's router).
    pub routes: Routes,
    /// TLS for the server and for pushes; `None` for plaintext.
    pub tls: Option<TlsConfig>,
    /// Size limits and the mailbox budget.
    pub limits: Limits,
    /// Connections and retries.
    pub client: ClientOptions,
    /// Longest a `send` may take, retries included.
    pub send_timeout: Duration,
    /// Threads of the transport's runtime.
    pub worker_threads: usize,
    /// Most slices of split objects pushed at once (their acknowledgements overlap; `send`
    /// of an object's last slice waits for all of them and reports the first failure).
    pub max_in_flight: usize,
    /// The node's handler of fate_flow commands relayed to this site's parties (`unaryCall`,
    /// fate-spec §2.3); `None` refuses them.
    pub commands: Option<Commands>,
}

impl TransportConfig {
    /// Plaintext transport on `listen` with default limits.
    pub fn new(listen: SocketAddr, routes: Routes) -> Self {
        TransportConfig {
            listen,
            routes,
            tls: None,
            limits: Limits::default(),
            client: ClientOptions::default(),
            send_timeout: Duration::from_secs(300),
            worker_threads: 2,
            max_in_flight: 16,
            commands: None,
        }
    }
}

/// A site's federation transport: `send` pushes the frame towards the destination party by
/// the route table (through this site's router or straight to the peer's router); `recv`
/// waits on the mailbox that the transport's own gRPC server fills. Frames between two
/// parties of this site skip the network.
///
/// An inline message's `send` returns once the destination acknowledged it. The slices of a
/// split object are pushed in the background, `max_in_flight` at a time, so the latency of
/// the hops overlaps; the `send` of the last slice waits for every slice of the object and
/// returns the first failure (a failure also stops the next slice's `send`).
#[derive(Debug)]
pub struct GrpcTransport {
    server: Router,
    mailbox: Arc<Mailbox>,
    client: Arc<Client>,
    routes: Routes,
    limits: Limits,
    send_timeout: Duration,
    max_in_flight: usize,
    pipeline: Arc<Pipeline>,
}

impl GrpcTransport {
    /// Starts the transport's server and runtime. Call it outside any async runtime; `send`
    /// and `recv` block the calling thread, as [`Transport`] requires.
    pub fn start(config: TransportConfig) -> Result<Arc<Self>, GrpcError> {
        config.limits.check()?;
        let mailbox =
            Mailbox::with_limits(config.limits.mailbox_bytes, config.limits.mailbox.clone());
        let client = Client::new(
            config.tls.clone(),
            config.client.clone(),
            config.limits.max_packet_size,
        );
        let server = Router::start_inner(
            RouterConfig {
                listen: config.listen,
                routes: config.routes.clone(),
                tls: config.tls,
                limits: config.limits.clone(),
                client: config.client,
                worker_threads: config.worker_threads,
                osx: crate::OsxConfig::default(),
            },
            Some(mailbox.clone()),
            config.commands,
        )?;
        Ok(Arc::new(GrpcTransport {
            server,
            mailbox,
            client,
            routes: config.routes,
            limits: config.limits,
            send_timeout: config.send_timeout,
            max_in_flight: config.max_in_flight,
            pipeline: Arc::new(Pipeline::default()),
        }))
    }

    /// The address of the transport's server (what the site router's table points to).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The mailbox of received frames (for stats and tests).
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// The route table handle.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Relays a REST call to the node of `dst_party` (FATE-Flow's command relay over
    /// `unaryCall`, fate-spec §2.3) and returns its reply body. Blocks the calling thread (call
    /// it outside async code, e.g. from `spawn_blocking`). Errors name the hop that failed.
    pub fn call(
        &self,
        job_id: &str,
        dst_party: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let table = self.routes.current();
        let src_party = table
            .self_party()
            .first()
            .cloned()
            .ok_or("the route table has no self_party, so calls have no source party")?;
        let dst = format!("{FATEFLOW_ROLE}:{dst_party}");
        let hop = table
            .lookup(dst_party, FATEFLOW_ROLE)
            .map_err(|e| format!("route to {dst}: {e}"))?;
        let packet = command::request_packet(
            job_id,
            &src_party,
            dst_party,
            "POST",
            path,
            Bytes::from(body),
            timeout.as_millis() as i64,
        );
        let (client, dst_party) = (self.client.clone(), dst_party.to_string());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.server
            .spawn(async move {
                // Channels are made on the transport's runtime (they spawn their connection).
                let result = match client.channel(&hop, &dst_party, table.self_party()) {
                    Ok(channel) => {
                        let mut request = tonic::Request::new(packet);
                        // The deadline travels as `grpc-timeout` for the next hops, and is
                        // enforced here too: a hop that accepts the call and then stalls (a
                        // stopped router) cannot hold the caller past it.
                        request.set_timeout(timeout);
                        let mut grpc = client.grpc(channel);
                        match tokio::time::timeout(timeout, grpc.unary_call(request)).await {
                            Ok(reply) => reply.map_err(|status| {
                                client.hop_error(
                                    &hop,
                                    &dst,
                                    &dst_party,
                                    table.self_party(),
                                    &status,
                                )
                            }),
                            Err(_) => Err(client.hop_error(
                                &hop,
                                &dst,
                                &dst_party,
                                table.self_party(),
                                &tonic::Status::deadline_exceeded(format!(
                                    "no answer within {} ms",
                                    timeout.as_millis()
                                )),
                            )),
                        }
                    }
                    Err(e) => Err(e),
                };
                let _ = tx.send(result);
            })
            .map_err(|e| e.to_string())?;
        let reply = rx
            .recv()
            .map_err(|_| "the transport's runtime stopped during the call".to_string())??;
        Ok(reply
            .into_inner()
            .body
            .map(|b| b.value.to_vec())
            .unwrap_or_default())
    }
}

impl GrpcTransport {
    /// Starts a push of `frame` and calls `done` with its outcome.
    fn push_async(
        &self,
        key: &MessageKey,
        frame: Vec<u8>,
        cancel: &CancelToken,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> Result<(), String> {
        let env = Envelope {
            key: key.clone(),
            frame_len: frame.len() as u64,
            hops: 0,
        };
        let client = self.client.clone();
        let routes = self.routes.clone();
        let deadline = Instant::now() + self.send_timeout;
        let frame = Bytes::from(frame);
        let cancel = cancel.clone();
        self.server
            .spawn(async move {
                done(client.push(&routes, &env, frame, deadline, &cancel).await);
            })
            .map_err(|e| e.to_string())
    }
}

/// How `send` treats a frame.
enum Frame {
    /// Pushed and acknowledged before `send` returns (inline messages).
    Single,
    /// A split header or a slice of a split object: pushed in the background, up to
    /// `max_in_flight` at a time; `send` of the last slice waits for the whole object.
    Part { group: MessageKey, last: bool },
}

#[derive(Debug, Default)]
struct Group {
    slice_count: u32,
    outstanding: usize,
    error: Option<String>,
}

/// Bookkeeping of background pushes, by split object (the message key of its header).
#[derive(Debug, Default)]
struct Pipeline {
    state: Mutex<PipelineState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PipelineState {
    groups: HashMap<MessageKey, Group>,
    in_flight: usize,
}

impl Pipeline {
    fn classify(&self, key: &MessageKey, frame: &[u8]) -> Frame {
        if let Some((base, index)) = wire::parse_slice_name(&key.name) {
            let group = MessageKey {
                name: base.to_string(),
                ..key.clone()
            };
            return match self.state.lock().groups.get(&group) {
                Some(g) => Frame::Part {
                    last: index.checked_add(1) == Some(g.slice_count),
                    group,
                },
                // A slice without a header seen by this transport: nothing to pipeline with.
                None => Frame::Single,
            };
        }
        if frame.len() == wire::SPLIT_HEADER_LEN
            && let Ok(Head::Split(split)) = wire::decode_head(frame, usize::MAX)
        {
            let mut state = self.state.lock();
            state.groups.insert(
                key.clone(),
                Group {
                    slice_count: split.slice_count(),
                    ..Group::default()
                },
            );
            return Frame::Part {
                group: key.clone(),
                last: false,
            };
        }
        Frame::Single
    }

    /// Waits for a free push slot and counts a push of `group`; returns the group's first
    /// failure instead if one happened, or `Stopped` once `cancel` is set.
    fn begin(
        &self,
        group: &MessageKey,
        max_in_flight: usize,
        cancel: &CancelToken,
    ) -> Result<(), Stopped> {
        let mut state = self.state.lock();
        loop {
            if let Some(error) = state.groups.get(group).and_then(|g| g.error.clone()) {
                state.groups.remove(group);
                return Err(Stopped::Failed(error));
            }
            if state.in_flight < max_in_flight.max(1) {
                break;
            }
            if cancel.is_canceled() {
                return Err(Stopped::Canceled);
            }
            self.changed.wait_for(&mut state, CANCEL_POLL);
        }
        state.in_flight += 1;
        state.groups.entry(group.clone()).or_default().outstanding += 1;
        Ok(())
    }

    fn complete(&self, group: &MessageKey, error: Option<String>) {
        let mut state = self.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if let Some(g) = state.groups.get_mut(group) {
            g.outstanding = g.outstanding.saturating_sub(1);
            if g.error.is_none() {
                g.error = error;
            }
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Waits until every push of `group` is acknowledged; returns the first failure, or
    /// `Stopped::Canceled` once `cancel` is set (the pushes end soon after: they watch the
    /// same token).
    fn drain(&self, group: &MessageKey, cancel: &CancelToken) -> Result<(), Stopped> {
        let mut state = self.state.lock();
        while state.groups.get(group).is_some_and(|g| g.outstanding > 0) {
            if cancel.is_canceled() {
                return Err(Stopped::Canceled);
            }
            self.changed.wait_for(&mut state, CANCEL_POLL);
        }
        match state.groups.remove(group).and_then(|g| g.error) {
            Some(error) => Err(Stopped::Failed(error)),
            None => Ok(()),
        }
    }

    fn cleanup(&self, session_id: &str) {
        self.state
            .lock()
            .groups
            .retain(|key, g| key.session_id != session_id || g.outstanding > 0);
    }
}

/// Why a pipelined send ended early.
enum Stopped {
    /// A push of the object failed (the first failure).
    Failed(String),
    /// The sender's cancel token was set.
    Canceled,
}

impl Transport for GrpcTransport {
    fn send(&self, key: &MessageKey, frame: Vec<u8>) -> Result<(), FederationError> {
        self.send_cancellable(key, frame, &CancelToken::new())
    }

    fn send_cancellable(
        &self,
        key: &MessageKey,
        frame: Vec<u8>,
        cancel: &CancelToken,
    ) -> Result<(), FederationError> {
        if frame.len() > self.limits.max_frame_size {
            return Err(FederationError::transport(
                &key.dst,
                format!(
                    "frame of {} bytes for {key} exceeds max_frame_size of {} bytes",
                    frame.len(),
                    self.limits.max_frame_size
                ),
            ));
        }
        let table = self.routes.current();
        if table.is_self(key.dst.party_id.as_str()) {
            return self.mailbox.put(key, frame).map(drop).map_err(|refusal| {
                let reason = match refusal {
                    Refusal::Full {
                        pending,
                        incoming,
                        budget,
                    } => format!(
                        "local mailbox is full: {pending} bytes pending, {incoming} more would \
                         exceed its budget of {budget} bytes"
                    ),
                    Refusal::InFlight => format!("a push of {key} is still being received"),
                    Refusal::Over(over) => format!("local mailbox refused {key}: {over}"),
                };
                FederationError::transport(&key.dst, reason)
            });
        }
        // Fail fast on a missing route; pushes look the route up again on every attempt.
        table
            .lookup(key.dst.party_id.as_str(), key.dst.role.as_str())
            .map_err(|e| FederationError::transport(&key.dst, e.to_string()))?;
        // A push that ends because its token was set reports that, not the hop's last error.
        let err = |reason: String| {
            if cancel.is_canceled() {
                FederationError::canceled(key)
            } else {
                FederationError::transport(&key.dst, reason)
            }
        };
        let stopped = |why: Stopped| match why {
            Stopped::Failed(reason) => err(reason),
            Stopped::Canceled => FederationError::canceled(key),
        };
        match self.pipeline.classify(key, &frame) {
            Frame::Single => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                self.push_async(key, frame, cancel, move |result| {
                    let _ = tx.send(result);
                })
                .map_err(err)?;
                loop {
                    match rx.recv_timeout(CANCEL_POLL) {
                        Ok(result) => return result.map_err(err),
                        Err(RecvTimeoutError::Timeout) if cancel.is_canceled() => {
                            return Err(FederationError::canceled(key));
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            return Err(err(
                                "the transport's runtime stopped during the push".into()
                            ));
                        }
                    }
                }
            }
            Frame::Part { group, last } => {
                self.pipeline
                    .begin(&group, self.max_in_flight, cancel)
                    .map_err(stopped)?;
                let pipeline = self.pipeline.clone();
                let done_group = group.clone();
                if let Err(reason) = self.push_async(key, frame, cancel, move |result| {
                    pipeline.complete(&done_group, result.err());
                }) {
                    self.pipeline.complete(&group, Some(reason));
                }
                if last {
                    self.pipeline.drain(&group, cancel).map_err(stopped)?;
                }
                Ok(())
            }
        }
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        self.mailbox.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        "grpc"
    }

    fn cleanup(&self, session_id: &str) {
        self.mailbox.cleanup(session_id);
        self.pipeline.cleanup(session_id);
    }
}
