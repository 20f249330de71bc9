//! [`RabbitTransport`]: the federation [`Transport`] over RabbitMQ brokers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fate_federation::mailbox::{CANCEL_POLL, Mailbox};
use fate_federation::{CancelToken, FederationError, MailboxLimits, MessageKey, Transport, wire};
use fate_types::Party;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use parking_lot::Mutex;

use crate::RabbitError;
use crate::mgmt::{Management, encode};
use crate::route::{Broker, RouteTable};

/// How the parties' brokers are connected (FATE's `rabbitmq.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One broker per party, queues federated between them (FATE's default).
    Replication,
    /// Plain queues; a sender publishes straight into the receiver's broker.
    Client,
}

impl std::str::FromStr for Mode {
    type Err = RabbitError;
    fn from_str(s: &str) -> Result<Self, RabbitError> {
        match s {
            "replication" => Ok(Mode::Replication),
            "client" => Ok(Mode::Client),
            other => Err(RabbitError::Config(format!(
                "mode `{other}` is neither `replication` nor `client`"
            ))),
        }
    }
}

/// Settings of a [`RabbitTransport`].
#[derive(Clone, Debug)]
pub struct RabbitConfig {
    /// Where every party's broker is.
    pub routes: RouteTable,
    /// The parties this transport sends and receives for; their route-table entries must
    /// carry the admin `user` and `password`.
    pub local_parties: Vec<String>,
    /// Replication or client mode.
    pub mode: Mode,
    /// Largest frame sent or accepted (default: a 16 MiB slice plus its header).
    pub max_frame_size: usize,
    /// Most bytes of received frames held for their `recv`s.
    pub mailbox_bytes: usize,
    /// Bounds per session and per sending party, expiry of unclaimed frames.
    pub mailbox: MailboxLimits,
    /// Longest a `send` may take, retries included.
    pub send_timeout: Duration,
    /// Messages a consumer may hold unacknowledged.
    pub prefetch: u16,
    /// Threads of the transport's runtime.
    pub worker_threads: usize,
    /// Longest a session's setup keeps retrying while a broker is unreachable or starting
    /// (a broker restarted while a task begins), bounded also by the call's own deadline.
    pub setup_timeout: Duration,
}

impl RabbitConfig {
    /// Defaults for `routes`, serving `local_parties`.
    pub fn new(routes: RouteTable, local_parties: Vec<String>, mode: Mode) -> Self {
        RabbitConfig {
            routes,
            local_parties,
            mode,
            max_frame_size: wire::max_frame_len(16 << 20),
            mailbox_bytes: 2 << 30,
            mailbox: MailboxLimits::default(),
            send_timeout: Duration::from_secs(300),
            prefetch: 16,
            worker_threads: 2,
            setup_timeout: Duration::from_secs(120),
        }
    }
}

/// Which pair of parties, seen from a local party, in which session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LinkId {
    session: String,
    me: Party,
    peer: Party,
}

/// The queues of one pair in one session, set up once on first use.
struct Link {
    id: LinkId,
    vhost: String,
    /// Where `me` publishes, and the broker it lives on.
    send_queue: String,
    send_broker: Broker,
    /// Where `me` consumes (on its own broker).
    recv_queue: String,
    /// The job's `rabbitmq_run.connection.heartbeat` for this link's connections.
    heartbeat: Option<u16>,
    ready: Mutex<bool>,
    publisher: tokio::sync::Mutex<Option<(Connection, Channel)>>,
    stop: Arc<AtomicBool>,
}

impl Link {
    /// The party whose broker the send queue is on: the sender's own in both modes.
    fn send_broker_party(&self) -> &str {
        self.id.me.party_id.as_str()
    }

    fn send_broker_of_peer(&self, routes: &RouteTable) -> Result<Broker, RabbitError> {
        routes.broker(self.id.peer.party_id.as_str()).cloned()
    }

    /// The URI of this link's vhost on `broker`, as the session's user.
    fn uri(&self, broker: &Broker) -> String {
        let session = &self.id.session;
        amqp_uri(broker, session, session, &self.vhost, self.heartbeat)
    }
}

struct Inner {
    config: RabbitConfig,
    runtime: tokio::runtime::Runtime,
    mailbox: Arc<Mailbox>,
    admins: HashMap<String, Management>,
    links: Mutex<HashMap<LinkId, Arc<Link>>>,
    /// Per session, the local parties on whose broker the session's user exists.
    users: Mutex<HashMap<String, HashSet<String>>>,
    /// The job's `rabbitmq_run` per (session, local party), until the session's cleanup.
    runs: Mutex<HashMap<(String, Party), fate_types::BrokerRun>>,
}

/// A node's federation transport over RabbitMQ (see the crate documentation).
pub struct RabbitTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RabbitTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitTransport")
            .field("mode", &self.inner.config.mode)
            .field("local_parties", &self.inner.config.local_parties)
            .finish_non_exhaustive()
    }
}

/// An AMQP URI; `heartbeat` (seconds) is asked of the broker as the URI's `heartbeat` query,
/// which lapin and RabbitMQ's federation links both read.
pub(crate) fn amqp_uri(
    broker: &Broker,
    user: &str,
    password: &str,
    vhost: &str,
    heartbeat: Option<u16>,
) -> String {
    let mut uri = format!(
        "amqp://{}:{}@{}:{}/{}",
        encode(user),
        encode(password),
        broker.host,
        broker.port,
        encode(vhost)
    );
    if let Some(h) = heartbeat {
        uri.push_str(&format!("?heartbeat={h}"));
    }
    uri
}

const NAME_HEADER: &str = "fate-name";
const TAG_HEADER: &str = "fate-tag";
/// Longest name or tag accepted from a message header.
const MAX_NAME: usize = 4096;

impl RabbitTransport {
    /// Checks every local party's management API (address and credentials) and starts the
    /// transport's runtime. Call it outside any async runtime.
    pub fn start(config: RabbitConfig) -> Result<Arc<Self>, RabbitError> {
        if config.local_parties.is_empty() {
            return Err(RabbitError::Config("no local party to serve".into()));
        }
        if config.mailbox_bytes < config.max_frame_size {
            return Err(RabbitError::Config(format!(
                "mailbox_bytes {} is smaller than max_frame_size {}",
                config.mailbox_bytes, config.max_frame_size
            )));
        }
        let mut admins = HashMap::new();
        for party in &config.local_parties {
            let broker = config.routes.broker(party)?;
            let admin = Management::new(party, broker)?;
            admin.check()?;
            admins.insert(party.clone(), admin);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("fate-rabbitmq")
            .enable_all()
            .build()
            .map_err(|e| RabbitError::Config(format!("cannot start its runtime: {e}")))?;
        let mailbox = Mailbox::with_limits(config.mailbox_bytes, config.mailbox.clone());
        let weak = Arc::downgrade(&mailbox);
        let every = mailbox.limits().sweep_interval();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(mailbox) = weak.upgrade() else { break };
                mailbox.expire();
            }
        });
        Ok(Arc::new(RabbitTransport {
            inner: Arc::new(Inner {
                config,
                runtime,
                mailbox,
                admins,
                links: Mutex::new(HashMap::new()),
                users: Mutex::new(HashMap::new()),
                runs: Mutex::new(HashMap::new()),
            }),
        }))
    }

    /// The mailbox of received frames (for stats and tests).
    pub fn mailbox(&self) -> &Mailbox {
        &self.inner.mailbox
    }

    /// The management client of a local party's broker.
    pub fn management(&self, party_id: &str) -> Option<&Management> {
        self.inner.admins.get(party_id)
    }

    /// The vhost FATE uses for a pair in a session: the pair ordered by (role, party id).
    pub fn vhost(session: &str, a: &Party, b: &Party) -> String {
        let ka = (a.role.as_str(), a.party_id.as_str());
        let kb = (b.role.as_str(), b.party_id.as_str());
        let (low, high) = if ka <= kb { (a, b) } else { (b, a) };
        format!(
            "{session}-{}-{}-{}-{}",
            low.role.as_str(),
            low.party_id.as_str(),
            high.role.as_str(),
            high.party_id.as_str()
        )
    }

    fn is_local(&self, party: &Party) -> bool {
        self.inner.admins.contains_key(party.party_id.as_str())
    }

    /// The link of (`me`, `peer`) in `session`, set up on the brokers if it is new.
    fn link(
        &self,
        session: &str,
        me: &Party,
        peer: &Party,
        on_error: &Party,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Arc<Link>, FederationError> {
        let fail = |e: RabbitError| FederationError::transport(on_error, e.to_string());
        let id = LinkId {
            session: session.to_string(),
            me: me.clone(),
            peer: peer.clone(),
        };
        let link = {
            let mut links = self.inner.links.lock();
            match links.get(&id) {
                Some(link) => link.clone(),
                None => {
                    let routes = &self.inner.config.routes;
                    let my_broker = routes.broker(me.party_id.as_str()).map_err(fail)?;
                    // An unknown peer fails here, naming it, in both modes.
                    routes.broker(peer.party_id.as_str()).map_err(fail)?;
                    let pair = |a: &Party, b: &Party| {
                        format!(
                            "{session}-{}-{}-{}-{}",
                            a.role.as_str(),
                            a.party_id.as_str(),
                            b.role.as_str(),
                            b.party_id.as_str()
                        )
                    };
                    let (send_queue, send_broker, recv_queue) = match self.inner.config.mode {
                        Mode::Replication => (
                            format!("send-{}", pair(me, peer)),
                            my_broker.clone(),
                            format!("receive-{}", pair(peer, me)),
                        ),
                        Mode::Client => (pair(me, peer), my_broker.clone(), pair(peer, me)),
                    };
                    for q in [&send_queue, &recv_queue] {
                        if q.len() > 255 {
                            return Err(fail(RabbitError::Config(format!(
                                "queue name `{q}` is longer than AMQP's 255 bytes"
                            ))));
                        }
                    }
                    let heartbeat = self
                        .inner
                        .runs
                        .lock()
                        .get(&(session.to_string(), me.clone()))
                        .and_then(|r| r.heartbeat_secs);
                    let link = Arc::new(Link {
                        id: id.clone(),
                        vhost: Self::vhost(session, me, peer),
                        send_queue,
                        send_broker,
                        recv_queue,
                        heartbeat,
                        ready: Mutex::new(false),
                        publisher: tokio::sync::Mutex::new(None),
                        stop: Arc::new(AtomicBool::new(false)),
                    });
                    links.insert(id, link.clone());
                    link
                }
            }
        };
        let mut ready = link.ready.lock();
        if !*ready {
            let until = deadline.min(Instant::now() + self.inner.config.setup_timeout);
            let mut backoff = Duration::from_millis(200);
            loop {
                match self.set_up(&link) {
                    Ok(()) => break,
                    // A broker being restarted: its setup is idempotent (PUTs), so retry it
                    // until the broker is back rather than fail the task.
                    Err(e)
                        if is_transient(&e)
                            && !cancel.is_canceled()
                            && Instant::now() + backoff < until =>
                    {
                        tracing::warn!(session, %me, %peer, error = %e,
                            "Cannot set up the session on its broker yet; retrying.");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
            *ready = true;
        }
        drop(ready);
        Ok(link)
    }

    /// Creates the link's vhost, user, permissions (and in replication mode its upstream and
    /// policy) on the local broker, then starts its consumer.
    fn set_up(&self, link: &Link) -> Result<(), RabbitError> {
        let me = link.id.me.party_id.as_str();
        let session = &link.id.session;
        let admin = self
            .inner
            .admins
            .get(me)
            .ok_or_else(|| RabbitError::Config(format!("party {me} is not served here")))?;
        admin.create_vhost(&link.vhost)?;
        {
            // Once per session and broker: concurrent PUTs of one user race on the broker.
            let mut users = self.inner.users.lock();
            let created = users.entry(session.clone()).or_default();
            if !created.contains(me) {
                admin.create_user(session, session)?;
                created.insert(me.to_string());
            }
        }
        admin.grant(&link.vhost, session)?;
        if self.inner.config.mode == Mode::Replication {
            let peer_broker = self
                .inner
                .config
                .routes
                .broker(link.id.peer.party_id.as_str())?;
            let upstream = link.uri(peer_broker);
            let peer_send = link.recv_queue.replacen("receive", "send", 1);
            admin.federate_queue(&link.vhost, &link.recv_queue, &upstream, &peer_send)?;
        }
        // Replication: the receive queue is on the local broker. Client: on the peer's broker,
        // where the peer publishes; it exists once the peer has sent (or set up) its side.
        let mode = self.inner.config.mode;
        let consume_from = match mode {
            Mode::Replication => self.inner.config.routes.broker(me)?.clone(),
            Mode::Client => link.send_broker_of_peer(&self.inner.config.routes)?,
        };
        let my_broker = consume_from;
        let consumer = Consumer {
            mailbox: self.inner.mailbox.clone(),
            uri: link.uri(&my_broker),
            addr: my_broker.amqp_addr(),
            wait_for_peer: mode == Mode::Client,
            queue: link.recv_queue.clone(),
            session: session.clone(),
            src: link.id.peer.clone(),
            dst: link.id.me.clone(),
            max_frame_size: self.inner.config.max_frame_size,
            prefetch: self.inner.config.prefetch,
            stop: link.stop.clone(),
        };
        // The first consume is awaited so that a refused login or a missing plugin is
        // reported here; after that the consumer reconnects on its own.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.runtime.spawn(consumer.run(tx));
        match rx.recv_timeout(crate::mgmt::TIMEOUT * 3) {
            Ok(result) => result,
            Err(_) => Err(RabbitError::Broker {
                party: me.to_string(),
                addr: my_broker.amqp_addr(),
                reason: format!("no consumer on `{}` within 30 s", link.recv_queue),
            }),
        }
    }

    /// Runs `fut` on the transport's runtime and waits for it, giving up at `deadline` or soon
    /// after `cancel` is set.
    fn block<T: Send + 'static>(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
        fut: impl Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, FederationError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let task = self.inner.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        fate_federation::mailbox::wait_answer(&rx, key, deadline, cancel, || task.abort())
    }
}

/// Whether a setup error may go away by itself: the broker or its management API cannot be
/// reached, or answers that it is starting or stopping. A refused login, a missing plugin or
/// a bad route-table entry is not.
fn is_transient(e: &RabbitError) -> bool {
    match e {
        RabbitError::Route { field, reason, .. } => {
            field == "mng_port" && reason.contains("unreachable")
        }
        RabbitError::Broker { reason, .. } => {
            let r = reason.to_ascii_lowercase();
            [
                "http 500",
                "http 502",
                "http 503",
                "connect:",
                "io error",
                "refused",
                "reset",
                "broken pipe",
                "is down",
                "not_allowed",
                "shutdown",
            ]
            .iter()
            .any(|t| r.contains(t))
                && !r.contains("access_refused")
                && !r.contains("no consumer on")
        }
        RabbitError::Config(_) => false,
    }
}

/// Publishes `frame` on the link's send queue, retrying until `deadline`.
async fn publish(
    link: Arc<Link>,
    key: MessageKey,
    frame: Vec<u8>,
    deadline: Instant,
) -> Result<(), String> {
    let uri = link.uri(&link.send_broker);
    let addr = link.send_broker.amqp_addr();
    let mut headers = FieldTable::default();
    headers.insert(
        NAME_HEADER.into(),
        AMQPValue::LongString(key.name.as_str().into()),
    );
    headers.insert(
        TAG_HEADER.into(),
        AMQPValue::LongString(key.tag.as_str().into()),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/octet-stream".into())
        .with_app_id(key.dst.party_id.as_str().into())
        .with_headers(headers);
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut publisher = link.publisher.lock().await;
            if publisher
                .as_ref()
                .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
            {
                let connection = Connection::connect(&uri, ConnectionProperties::default())
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                let channel = connection
                    .create_channel()
                    .await
                    .map_err(|e| format!("open a channel: {e}"))?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| format!("confirm.select: {e}"))?;
                declare(&channel, &link.send_queue).await?;
                *publisher = Some((connection, channel));
            }
            let (_, channel) = publisher.as_ref().expect("set above");
            let confirm = channel
                .basic_publish(
                    "".into(),
                    link.send_queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &frame,
                    properties.clone(),
                )
                .await
                .map_err(|e| format!("publish: {e}"));
            drop(publisher);
            let confirmation = confirm?
                .await
                .map_err(|e| format!("publisher confirm: {e}"))?;
            if confirmation.is_nack() {
                return Err("the broker refused the message (nack)".to_string());
            }
            Ok::<(), String>(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(reason) => {
                *link.publisher.lock().await = None;
                if Instant::now() + backoff >= deadline {
                    return Err(format!(
                        "broker {addr} of party {} (queue `{}` in vhost `{}`): {reason}",
                        link.send_broker_party(),
                        link.send_queue,
                        link.vhost
                    ));
                }
                tracing::debug!(%key, broker = %addr, %reason, "Publish failed; retrying.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

pub(crate) async fn declare(channel: &Channel, queue: &str) -> Result<(), String> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map(drop)
        .map_err(|e| format!("declare queue `{queue}`: {e}"))
}

/// Moves the messages of one receive queue into the mailbox.
struct Consumer {
    mailbox: Arc<Mailbox>,
    uri: String,
    addr: String,
    queue: String,
    session: String,
    src: Party,
    dst: Party,
    max_frame_size: usize,
    prefetch: u16,
    stop: Arc<AtomicBool>,
    /// Client mode: the queue is on the peer's broker, where the session's vhost and user
    /// appear only once the peer set up its side; keep trying instead of failing the setup.
    wait_for_peer: bool,
}

/// How long the first consume may keep failing before the setup reports it (a vhost just
/// created may still be starting: "vhost ... is down").
const FIRST_CONSUME: Duration = Duration::from_secs(10);

impl Consumer {
    async fn open(&self) -> Result<(Connection, lapin::Consumer), String> {
        let connection = Connection::connect(&self.uri, ConnectionProperties::default())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("open a channel: {e}"))?;
        declare(&channel, &self.queue).await?;
        channel
            .basic_qos(self.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| format!("basic.qos: {e}"))?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "fate".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("consume `{}`: {e}", self.queue))?;
        Ok((connection, consumer))
    }

    fn broker_error(&self, reason: String) -> RabbitError {
        RabbitError::Broker {
            party: self.dst.party_id.to_string(),
            addr: self.addr.clone(),
            reason,
        }
    }

    async fn run(self, started: std::sync::mpsc::SyncSender<Result<(), RabbitError>>) {
        let mut started = Some(started);
        if self.wait_for_peer
            && let Some(tx) = started.take()
        {
            let _ = tx.send(Ok(()));
        }
        let first = Instant::now();
        let mut backoff = Duration::from_millis(100);
        while !self.stop.load(Ordering::SeqCst) {
            let (connection, mut consumer) = match self.open().await {
                Ok(opened) => opened,
                Err(reason) => {
                    if first.elapsed() > FIRST_CONSUME
                        && let Some(tx) = started.take()
                    {
                        let _ = tx.send(Err(self.broker_error(reason)));
                        return;
                    }
                    // Expected for a while in client mode (the peer has not set up its
                    // side yet) and while a vhost starts; worth a warning after that.
                    if first.elapsed() > FIRST_CONSUME {
                        tracing::warn!(queue = %self.queue, broker = %self.addr, %reason,
                            "Cannot consume; retrying.");
                    } else {
                        tracing::debug!(queue = %self.queue, broker = %self.addr, %reason,
                            "Cannot consume yet; retrying.");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            if let Some(tx) = started.take() {
                let _ = tx.send(Ok(()));
            }
            backoff = Duration::from_millis(100);
            loop {
                let next = tokio::time::timeout(CANCEL_POLL * 4, consumer.next()).await;
                if self.stop.load(Ordering::SeqCst) {
                    let _ = connection.close(200, "session cleaned up".into()).await;
                    return;
                }
                match next {
                    // A connection that died without ending the stream (the broker
                    // restarted): reconnect rather than wait on it for ever.
                    Err(_) if !connection.status().connected() => {
                        tracing::warn!(queue = %self.queue, broker = %self.addr,
                            "Connection to the broker lost; reconnecting.");
                        break;
                    }
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        tracing::warn!(queue = %self.queue, broker = %self.addr, error = %e,
                            "Consumer failed; reconnecting.");
                        break;
                    }
                    Ok(Some(Ok(delivery))) => {
                        if !self.deliver(delivery).await {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Admits one delivery into the mailbox and acknowledges it; returns false if the channel
    /// failed (the consumer reconnects and the broker redelivers what was not acknowledged).
    async fn deliver(&self, delivery: lapin::message::Delivery) -> bool {
        let header = |name: &str| -> Option<String> {
            let headers = delivery.properties.headers().as_ref()?;
            match headers.inner().get(name)? {
                AMQPValue::LongString(s) if s.as_bytes().len() <= MAX_NAME => {
                    String::from_utf8(s.as_bytes().to_vec()).ok()
                }
                _ => None,
            }
        };
        let (name, tag) = match (header(NAME_HEADER), header(TAG_HEADER)) {
            (Some(n), Some(t)) if delivery.data.len() <= self.max_frame_size => (n, t),
            _ => {
                tracing::warn!(
                    queue = %self.queue, broker = %self.addr, peer = %self.src,
                    n_bytes = delivery.data.len(), max = self.max_frame_size,
                    "Rejected a message without fate headers or over max_frame_size."
                );
                return delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .is_ok();
            }
        };
        let key = MessageKey {
            session_id: self.session.clone(),
            name,
            tag,
            src: self.src.clone(),
            dst: self.dst.clone(),
        };
        let mut frame = Some(delivery.data.clone());
        // The mailbox refuses a frame nobody waits for while it is over its bounds; the
        // message stays unacknowledged (the prefetch bounds how many) until it fits.
        loop {
            match self
                .mailbox
                .put(&key, frame.take().expect("kept for a retry"))
            {
                Ok(stored) => {
                    if !stored {
                        tracing::debug!(%key, "Ignored a message delivered before.");
                    }
                    break;
                }
                Err(refusal) => {
                    tracing::debug!(%key, %refusal, "Mailbox full; holding the message.");
                    if self.stop.load(Ordering::SeqCst) {
                        return false;
                    }
                    frame = Some(delivery.data.clone());
                    tokio::time::sleep(CANCEL_POLL).await;
                }
            }
        }
        delivery.ack(BasicAckOptions::default()).await.is_ok()
    }
}

impl Transport for RabbitTransport {
    fn send(&self, key: &MessageKey, frame: Vec<u8>) -> Result<(), FederationError> {
        self.send_cancellable(key, frame, &CancelToken::new())
    }

    fn send_cancellable(
        &self,
        key: &MessageKey,
        frame: Vec<u8>,
        cancel: &CancelToken,
    ) -> Result<(), FederationError> {
        if frame.len() > self.inner.config.max_frame_size {
            return Err(FederationError::transport(
                &key.dst,
                format!(
                    "frame of {} bytes for {key} exceeds max_frame_size of {} bytes",
                    frame.len(),
                    self.inner.config.max_frame_size
                ),
            ));
        }
        if !self.is_local(&key.src) {
            return Err(FederationError::transport(
                &key.dst,
                format!(
                    "party {} is not served by this node's rabbitmq transport",
                    key.src
                ),
            ));
        }
        let deadline = Instant::now() + self.inner.config.send_timeout;
        let link = self.link(
            &key.session_id,
            &key.src,
            &key.dst,
            &key.dst,
            deadline,
            cancel,
        )?;
        // A moment past the publish's own deadline, so that its error (naming the broker)
        // arrives rather than a bare timeout.
        self.block(
            key,
            deadline + Duration::from_secs(1),
            cancel,
            publish(link, key.clone(), frame, deadline),
        )
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        if !self.is_local(&key.dst) {
            return Err(FederationError::transport(
                &key.src,
                format!(
                    "party {} is not served by this node's rabbitmq transport",
                    key.dst
                ),
            ));
        }
        self.link(
            &key.session_id,
            &key.dst,
            &key.src,
            &key.src,
            deadline,
            cancel,
        )?;
        self.inner.mailbox.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn configure_session(&self, session_id: &str, party: &Party, run: &fate_types::BrokerRun) {
        self.inner
            .runs
            .lock()
            .insert((session_id.to_string(), party.clone()), run.clone());
    }

    fn cleanup(&self, session_id: &str) {
        self.inner.runs.lock().retain(|(s, _), _| s != session_id);
        let links: Vec<Arc<Link>> = {
            let mut links = self.inner.links.lock();
            let mine: Vec<LinkId> = links
                .keys()
                .filter(|id| id.session == session_id)
                .cloned()
                .collect();
            mine.iter().filter_map(|id| links.remove(id)).collect()
        };
        let mut vhosts = HashSet::new();
        for link in &links {
            link.stop.store(true, Ordering::SeqCst);
            if let Some((connection, _)) = link.publisher.try_lock().ok().and_then(|mut p| p.take())
            {
                self.inner.runtime.spawn(async move {
                    let _ = connection.close(200, "session cleaned up".into()).await;
                });
            }
            vhosts.insert((link.id.me.party_id.to_string(), link.vhost.clone()));
        }
        for (party, vhost) in &vhosts {
            if let Some(admin) = self.inner.admins.get(party)
                && let Err(e) = admin.delete_vhost(vhost)
            {
                tracing::warn!(session = session_id, %vhost, error = %e, "Cannot delete a vhost.");
            }
        }
        let users = self
            .inner
            .users
            .lock()
            .remove(session_id)
            .unwrap_or_default();
        for party in users {
            if let Some(admin) = self.inner.admins.get(&party)
                && let Err(e) = admin.delete_user(session_id)
            {
                tracing::warn!(session = session_id, error = %e, "Cannot delete a user.");
            }
        }
        self.inner.mailbox.cleanup(session_id);
    }
}

impl Drop for RabbitTransport {
    fn drop(&mut self) {
        for link in self.inner.links.lock().values() {
            link.stop.store(true, Ordering::SeqCst);
        }
    }
}
