//! [`PulsarTransport`]: the federation [`Transport`] over Pulsar brokers, client and
//! replication modes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fate_federation::mailbox::{CANCEL_POLL, Mailbox};
use fate_federation::{CancelToken, FederationError, MailboxLimits, MessageKey, Transport, wire};
use fate_types::Party;
use futures_util::StreamExt;
use parking_lot::Mutex;
use pulsar::compression::{
    Compression, CompressionLz4, CompressionSnappy, CompressionZlib, CompressionZstd,
};
use pulsar::consumer::InitialPosition;
use pulsar::{
    ConnectionRetryOptions, Consumer, ConsumerOptions, OperationRetryOptions, Producer,
    ProducerOptions, Pulsar, SubType, TokioExecutor,
};

use crate::PulsarError;
use crate::admin::Admin;
use crate::route::{Broker, RouteTable};

/// FATE's tenant.
pub const DEFAULT_TENANT: &str = "fl-tenant";
/// FATE's subscription name.
pub const DEFAULT_SUBSCRIPTION: &str = "unique";

/// How frames reach the receiving party's broker (fate-spec §2.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// One broker per party: the sender produces on its own broker, which replicates the
    /// session's namespace to the receiver's (Pulsar geo-replication; FATE's default).
    Replication,
    /// No replication: the sender produces straight on the receiver's broker.
    #[default]
    Client,
}

impl std::str::FromStr for Mode {
    type Err = PulsarError;
    fn from_str(s: &str) -> Result<Self, PulsarError> {
        match s {
            "replication" => Ok(Mode::Replication),
            "client" => Ok(Mode::Client),
            other => Err(PulsarError::Config(format!(
                "mode `{other}` is neither `replication` nor `client`"
            ))),
        }
    }
}

/// Settings of a [`PulsarTransport`].
#[derive(Clone, Debug)]
pub struct PulsarConfig {
    /// Where every party's broker is.
    pub routes: RouteTable,
    /// Replication or client mode.
    pub mode: Mode,
    /// Replication mode: the name of the local parties' brokers' own cluster (FATE's
    /// `pulsar.cluster`, `standalone`); every remote party's broker is registered on it as a
    /// cluster named after the party id.
    pub cluster: String,
    /// Replication mode: message TTL and retention of a session's namespace (FATE's
    /// `topic_ttl`, 30 minutes). Retention keeps frames replicated before the receiver
    /// subscribes.
    pub topic_ttl_minutes: u64,
    /// Replication mode: the most a session's namespace retains on a broker, in MiB.
    pub retention_mb: u64,
    /// Replication through an SNI proxy: the CA file, on the brokers' machines, the
    /// replicating broker trusts (the cluster's `brokerClientTrustCertsFilePath`); unset,
    /// the broker's own `brokerClientTrustCertsFilePath` applies.
    pub broker_trust_certs: Option<String>,
    /// Replication mode: how long after a first send to a peer its topic's replicator may
    /// take to connect to the peer's broker before the log names the hop.
    pub replication_timeout: Duration,
    /// Replication: the advertised listener of the remote brokers to use
    /// (the cluster's `listenerName`), when brokers advertise their site name on a listener
    /// of its own.
    pub listener_name: Option<String>,
    /// The parties this transport sends and receives for.
    pub local_parties: Vec<String>,
    /// Tenant of every session's namespace (FATE: `fl-tenant`).
    pub tenant: String,
    /// Last part of every topic name, `{src_role}-{src_pid}-{dst_role}-{dst_pid}-{suffix}`.
    pub topic_suffix: String,
    /// Subscription of the receiving party on its topics (FATE: `unique`).
    pub subscription: String,
    /// Largest frame sent or accepted; must fit the brokers' `maxMessageSize`.
    pub max_frame_size: usize,
    /// Most bytes of received frames held for their `recv`s.
    pub mailbox_bytes: usize,
    /// Bounds per session and per sending party, expiry of unclaimed frames.
    pub mailbox: MailboxLimits,
    /// Longest a `send` may take, retries included.
    pub send_timeout: Duration,
    /// Messages a consumer may hold unacknowledged (its receiver queue).
    pub prefetch: u32,
    /// Threads of the transport's runtime.
    pub worker_threads: usize,
}

impl PulsarConfig {
    /// Defaults for `routes`, serving `local_parties`.
    pub fn new(routes: RouteTable, local_parties: Vec<String>) -> Self {
        PulsarConfig {
            routes,
            mode: Mode::default(),
            cluster: "standalone".into(),
            topic_ttl_minutes: 30,
            retention_mb: 1024,
            broker_trust_certs: None,
            listener_name: None,
            replication_timeout: Duration::from_secs(60),
            local_parties,
            tenant: DEFAULT_TENANT.into(),
            topic_suffix: "federation".into(),
            subscription: DEFAULT_SUBSCRIPTION.into(),
            // A 4 MiB slice and its header: within Pulsar's default 5 MiB maxMessageSize.
            max_frame_size: wire::max_frame_len(4 << 20),
            mailbox_bytes: 2 << 30,
            mailbox: MailboxLimits::default(),
            send_timeout: Duration::from_secs(300),
            prefetch: 16,
            worker_threads: 2,
        }
    }
}

/// Room the broker needs beside a frame: message metadata, properties.
const METADATA_ROOM: usize = 64 << 10;
const NAME_PROPERTY: &str = "fate-name";
const TAG_PROPERTY: &str = "fate-tag";
/// Longest name or tag accepted from a message property.
const MAX_NAME: usize = 4096;
/// Longest Pulsar name (namespace or topic local name) this transport builds.
const MAX_PULSAR_NAME: usize = 255;

/// A namespace (session id) or topic name Pulsar accepts: `[-=:.\w]`, at most 255 bytes.
fn check_pulsar_name(what: &str, name: &str) -> Result<(), PulsarError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PULSAR_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b':' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(PulsarError::Config(format!(
            "{what} `{name}` is not a Pulsar name (1 to {MAX_PULSAR_NAME} bytes of letters, \
             digits, `-_=:.`)"
        )))
    }
}

/// Which pair of parties, seen from a local party, in which session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LinkId {
    session: String,
    me: Party,
    peer: Party,
}

/// One pair in one session: `me` produces on `send_topic` on the peer's broker and consumes
/// `recv_topic` on its own.
struct Link {
    id: LinkId,
    send_topic: String,
    /// Whose broker `send_broker` is: the peer's (client mode) or mine (replication).
    send_party: String,
    /// Frames reach the peer's broker by replication.
    replicate: bool,
    send_broker: Broker,
    recv_topic: String,
    recv_broker: Broker,
    send_ready: Mutex<bool>,
    recv_ready: Mutex<bool>,
    producer: tokio::sync::Mutex<Option<Producer<TokioExecutor>>>,
    stop: Arc<AtomicBool>,
}

struct Inner {
    config: PulsarConfig,
    runtime: tokio::runtime::Runtime,
    mailbox: Arc<Mailbox>,
    local: HashSet<String>,
    /// Pulsar clients by service URL.
    clients: tokio::sync::Mutex<HashMap<String, Pulsar<TokioExecutor>>>,
    links: Mutex<HashMap<LinkId, Arc<Link>>>,
    /// Per session, the parties on whose broker this node created the session's namespace.
    namespaces: Mutex<HashMap<String, HashSet<String>>>,
    /// Remote clusters registered on a local party's broker, by (local party, peer).
    registered: Mutex<HashSet<(String, String)>>,
    /// Held while a tenant and namespace are created.
    setup: Mutex<()>,
    /// The job's `pulsar_run` per (session, local party id), until the session's cleanup.
    runs: Mutex<HashMap<(String, String), fate_types::BrokerRun>>,
}

impl Inner {
    /// The job's `pulsar_run` for `party_id`'s links in `session`.
    fn run(&self, session: &str, party_id: &str) -> fate_types::BrokerRun {
        self.runs
            .lock()
            .get(&(session.to_string(), party_id.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

/// The producer compression for a job's `pulsar_run.producer.compression_type` (FATE's
/// default: LZ4).
fn compression(c: Option<fate_types::BrokerCompression>) -> Option<Compression> {
    use fate_types::BrokerCompression as C;
    match c.unwrap_or(C::Lz4) {
        C::None => None,
        C::Lz4 => Some(Compression::Lz4(CompressionLz4::default())),
        C::Zlib => Some(Compression::Zlib(CompressionZlib::default())),
        C::Zstd => Some(Compression::Zstd(CompressionZstd::default())),
        C::Snappy => Some(Compression::Snappy(CompressionSnappy::default())),
    }
}

/// A node's federation transport over Pulsar (see the crate documentation).
pub struct PulsarTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PulsarTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulsarTransport")
            .field("local_parties", &self.inner.config.local_parties)
            .field("tenant", &self.inner.config.tenant)
            .finish_non_exhaustive()
    }
}

impl PulsarTransport {
    /// Checks every local party's broker (its admin REST answers, its `maxMessageSize` fits
    /// `max_frame_size`) and starts the transport's runtime. Call it outside any async
    /// runtime.
    pub fn start(config: PulsarConfig) -> Result<Arc<Self>, PulsarError> {
        if config.local_parties.is_empty() {
            return Err(PulsarError::Config("no local party to serve".into()));
        }
        if config.mode == Mode::Replication {
            check_pulsar_name("cluster", &config.cluster)?;
        }
        if config.mailbox_bytes < config.max_frame_size {
            return Err(PulsarError::Config(format!(
                "mailbox_bytes {} is smaller than max_frame_size {}",
                config.mailbox_bytes, config.max_frame_size
            )));
        }
        check_pulsar_name("tenant", &config.tenant)?;
        check_pulsar_name("subscription", &config.subscription)?;
        check_pulsar_name("topic suffix", &config.topic_suffix)?;
        for party in &config.local_parties {
            let broker = config.routes.broker(party)?;
            let admin = Admin::new(party, &broker);
            let clusters = admin.clusters()?;
            if config.mode == Mode::Replication && !clusters.contains(&config.cluster) {
                return Err(PulsarError::Broker {
                    party: party.clone(),
                    addr: admin.addr().to_string(),
                    reason: format!(
                        "replication: the broker's clusters are {clusters:?}, without `{}` \
                         (set the transport's `cluster` to the broker's clusterName)",
                        config.cluster
                    ),
                });
            }
            if let Some(limit) = admin.max_message_size()
                && config.max_frame_size + METADATA_ROOM > limit
            {
                return Err(PulsarError::Broker {
                    party: party.clone(),
                    addr: admin.addr().to_string(),
                    reason: format!(
                        "its maxMessageSize of {limit} bytes is below max_frame_size {} plus \
                         {METADATA_ROOM} bytes of metadata: lower max_frame_size (and the \
                         federation's max_message_size) or raise the broker's limit",
                        config.max_frame_size
                    ),
                });
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("fate-pulsar")
            .enable_all()
            .build()
            .map_err(|e| PulsarError::Config(format!("cannot start its runtime: {e}")))?;
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
        let local = config.local_parties.iter().cloned().collect();
        Ok(Arc::new(PulsarTransport {
            inner: Arc::new(Inner {
                config,
                runtime,
                mailbox,
                local,
                clients: tokio::sync::Mutex::new(HashMap::new()),
                links: Mutex::new(HashMap::new()),
                namespaces: Mutex::new(HashMap::new()),
                registered: Mutex::new(HashSet::new()),
                setup: Mutex::new(()),
                runs: Mutex::new(HashMap::new()),
            }),
        }))
    }

    /// The mailbox of received frames (for stats and tests).
    pub fn mailbox(&self) -> &Mailbox {
        &self.inner.mailbox
    }

    /// FATE's topic name for frames from `src` to `dst`:
    /// `{src_role}-{src_pid}-{dst_role}-{dst_pid}-{suffix}` (the namespace scopes the session).
    pub fn topic(src: &Party, dst: &Party, suffix: &str) -> String {
        format!(
            "{}-{}-{}-{}-{suffix}",
            src.role.as_str(),
            src.party_id.as_str(),
            dst.role.as_str(),
            dst.party_id.as_str()
        )
    }

    fn is_local(&self, party: &Party) -> bool {
        self.inner.local.contains(party.party_id.as_str())
    }

    fn link(&self, session: &str, me: &Party, peer: &Party) -> Result<Arc<Link>, PulsarError> {
        let id = LinkId {
            session: session.to_string(),
            me: me.clone(),
            peer: peer.clone(),
        };
        let mut links = self.inner.links.lock();
        if let Some(link) = links.get(&id) {
            return Ok(link.clone());
        }
        check_pulsar_name("session id (the namespace)", session)?;
        let routes = &self.inner.config.routes;
        let recv_broker = routes.broker(me.party_id.as_str())?;
        let peer_broker = routes.broker(peer.party_id.as_str())?;
        // Replication: produce on my own broker, which replicates to the peer's; two
        // parties on one broker need none.
        let replicate = self.inner.config.mode == Mode::Replication
            && (peer_broker.host.as_str(), peer_broker.port)
                != (recv_broker.host.as_str(), recv_broker.port);
        let (send_party, send_broker) = if replicate {
            (me.party_id.as_str().to_string(), recv_broker.clone())
        } else {
            (peer.party_id.as_str().to_string(), peer_broker)
        };
        let suffix = &self.inner.config.topic_suffix;
        let send_topic = Self::topic(me, peer, suffix);
        let recv_topic = Self::topic(peer, me, suffix);
        check_pulsar_name("topic", &send_topic)?;
        check_pulsar_name("topic", &recv_topic)?;
        let link = Arc::new(Link {
            id: id.clone(),
            send_topic,
            send_party,
            replicate,
            send_broker,
            recv_topic,
            recv_broker,
            send_ready: Mutex::new(false),
            recv_ready: Mutex::new(false),
            producer: tokio::sync::Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
        });
        links.insert(id, link.clone());
        Ok(link)
    }

    /// Creates the tenant and the session's namespace on `party`'s broker, once per session
    /// and broker; the caller holds `setup`. In replication mode a new namespace gets its
    /// retention and TTL.
    fn ensure_namespace(
        &self,
        session: &str,
        party: &str,
        admin: &Admin,
    ) -> Result<(), PulsarError> {
        let tenant = &self.inner.config.tenant;
        let known = self
            .inner
            .namespaces
            .lock()
            .get(session)
            .is_some_and(|s| s.contains(party));
        if known {
            return Ok(());
        }
        let clusters = admin.clusters()?;
        if clusters.is_empty() {
            return Err(PulsarError::Broker {
                party: party.to_string(),
                addr: admin.addr().to_string(),
                reason: "its admin REST lists no cluster (is the broker still starting?)".into(),
            });
        }
        admin.create_tenant(tenant, &clusters)?;
        admin.create_namespace(tenant, session)?;
        if self.inner.config.mode == Mode::Replication {
            let c = &self.inner.config;
            let ttl = self
                .inner
                .run(session, party)
                .topic_ttl_minutes
                .map_or(c.topic_ttl_minutes, u64::from);
            admin.set_retention_and_ttl(tenant, session, ttl.max(1), c.retention_mb)?;
        }
        self.inner
            .namespaces
            .lock()
            .entry(session.to_string())
            .or_default()
            .insert(party.to_string());
        Ok(())
    }

    /// Pulsar's ClusterData for `peer`'s broker as FATE registers it (fate-spec §2.6): its
    /// service URLs and, behind an SNI proxy, TLS through the proxy.
    fn cluster_data(&self, peer: &Broker) -> serde_json::Value {
        let c = &self.inner.config;
        let mut data = serde_json::json!({
            "serviceUrl": peer.admin_url(),
            "brokerServiceUrl": peer.service_url(),
            "brokerServiceUrlTls": peer.service_url_tls(),
        });
        if let Some(proxy) = &peer.proxy {
            data["serviceUrlTls"] = format!("https://{}:{}", peer.host, peer.mng_ssl_port).into();
            data["proxyServiceUrl"] = format!("pulsar+ssl://{proxy}").into();
            data["proxyProtocol"] = "SNI".into();
            data["brokerClientTlsEnabled"] = true.into();
            data["tlsAllowInsecureConnection"] = false.into();
            if let Some(ca) = &c.broker_trust_certs {
                data["brokerClientTrustCertsFilePath"] = ca.clone().into();
            }
        }
        if let Some(listener) = &c.listener_name {
            data["listenerName"] = listener.clone().into();
        }
        data
    }

    /// Replication mode: `me`'s broker knows `peer`'s as a cluster named after the peer, the
    /// tenant is allowed on it, and the session's namespace exists; with `topic`, that topic
    /// (the one `me` sends to `peer` on) replicates to the peer's cluster.
    ///
    /// FATE replicates the whole namespace to every party of the session (fate-spec §2.6), so
    /// every broker of a job holds every pair's frames, the arbiter's those between guest and
    /// host too. Here replication is set per topic: a frame reaches its receiver's broker
    /// and no other.
    fn ensure_replication(
        &self,
        session: &str,
        me: &str,
        peer: &str,
        topic: Option<&str>,
    ) -> Result<(), PulsarError> {
        let c = &self.inner.config;
        let my_broker = c.routes.broker(me)?;
        let peer_broker = c.routes.broker(peer)?;
        let admin = Admin::new(me, &my_broker);
        // One at a time: the tenant's cluster list is read, extended and written back.
        let _one_at_a_time = self.inner.setup.lock();
        let pair = (me.to_string(), peer.to_string());
        if !self.inner.registered.lock().contains(&pair) {
            admin.upsert_cluster(peer, &self.cluster_data(&peer_broker))?;
            admin.allow_clusters(&c.tenant, &[c.cluster.clone(), peer.to_string()])?;
            self.inner.registered.lock().insert(pair);
        }
        self.ensure_namespace(session, me, &admin)?;
        if let Some(topic) = topic {
            admin.create_topic(&c.tenant, session, topic)?;
            admin.set_topic_replication(
                &c.tenant,
                session,
                topic,
                &[c.cluster.clone(), peer.to_string()],
            )?;
            // The policy applies asynchronously, and a replicator starts at the topic's end
            // (the broker's `replicationStartAt=latest`): a frame published before it exists
            // would never reach the peer. Wait for it.
            let deadline = Instant::now() + Duration::from_secs(30);
            while admin.replicator(&c.tenant, session, topic, peer)?.is_none() {
                if Instant::now() > deadline {
                    return Err(PulsarError::Broker {
                        party: me.to_string(),
                        addr: admin.addr().to_string(),
                        reason: format!(
                            "topic `{topic}` has no replicator to cluster `{peer}` 30 s after \
                             its replication was set"
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Replication mode: if the replicator of the link's send topic is still not connected to
    /// the peer's broker after `replication_timeout`, says so in the log, naming the hop (the
    /// peer's broker, the SNI proxy). Not an error of the send: the frames wait on this
    /// party's broker until the link comes up, and a peer that has not yet touched the
    /// session (its namespace does not exist yet) cannot take them before.
    fn watch_replication(&self, link: &Link) {
        let c = &self.inner.config;
        let me = link.id.me.party_id.as_str().to_string();
        let peer = link.id.peer.party_id.as_str().to_string();
        let admin = Admin::new(&me, &link.send_broker);
        let (tenant, session, topic) = (
            c.tenant.clone(),
            link.id.session.clone(),
            link.send_topic.clone(),
        );
        let after = c.replication_timeout;
        let hop = match c.routes.broker(&peer) {
            Ok(b) => match &b.proxy {
                Some(proxy) => format!(
                    "{} through the SNI proxy {proxy} (route for SNI `{}`?)",
                    b.service_url_tls(),
                    b.host
                ),
                None => b.service_url(),
            },
            Err(e) => e.to_string(),
        };
        let stop = link.stop.clone();
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(after).await;
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let connected = tokio::task::spawn_blocking(move || {
                admin
                    .replicator(&tenant, &session, &topic, &peer)
                    .map(|r| (r, admin, peer))
            })
            .await;
            if let Ok(Ok((state, admin, peer))) = connected
                && state != Some(true)
            {
                tracing::warn!(
                    broker = %admin.addr(), party = %me, peer = %peer, hop = %hop,
                    "Replication to the peer's broker is not connected {after:.0?} after the \
                     first send; frames wait on this broker until it is."
                );
            }
        });
    }

    /// Creates the tenant and the session's namespace on `party`'s broker and the
    /// receiver's subscription on `topic`, so that no frame sent before the receiver
    /// subscribes is lost.
    fn prepare_topic(
        &self,
        session: &str,
        party: &str,
        broker: &Broker,
        topic: &str,
    ) -> Result<(), PulsarError> {
        let admin = Admin::new(party, broker);
        {
            // Concurrent creations of one tenant race in the broker's metadata store (HTTP
            // 500, BadVersionException): one at a time here; Admin retries a race with
            // another node.
            let _one_at_a_time = self.inner.setup.lock();
            self.ensure_namespace(session, party, &admin)?;
        }
        admin.create_subscription(
            &self.inner.config.tenant,
            session,
            topic,
            &self.inner.config.subscription,
        )
    }

    fn full_topic(&self, session: &str, topic: &str) -> String {
        format!(
            "persistent://{}/{session}/{topic}",
            self.inner.config.tenant
        )
    }

    /// Sets up the link's receiving side: namespace and subscription on the local broker,
    /// then a consumer moving its messages into the mailbox.
    fn set_up_recv(&self, link: &Arc<Link>) -> Result<(), PulsarError> {
        let mut ready = link.recv_ready.lock();
        if *ready {
            return Ok(());
        }
        let me = link.id.me.party_id.as_str();
        if link.replicate {
            self.ensure_replication(&link.id.session, me, link.id.peer.party_id.as_str(), None)?;
        }
        self.prepare_topic(&link.id.session, me, &link.recv_broker, &link.recv_topic)?;
        let consumer = Receiver {
            mailbox: self.inner.mailbox.clone(),
            inner: Arc::downgrade(&self.inner),
            topic: self.full_topic(&link.id.session, &link.recv_topic),
            subscription: self.inner.config.subscription.clone(),
            broker: link.recv_broker.clone(),
            session: link.id.session.clone(),
            src: link.id.peer.clone(),
            dst: link.id.me.clone(),
            max_frame_size: self.inner.config.max_frame_size,
            prefetch: self.inner.config.prefetch,
            stop: link.stop.clone(),
        };
        // The first subscribe is awaited so that an unreachable broker is reported here;
        // after that the consumer reconnects on its own.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.runtime.spawn(consumer.run(tx));
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(result) => result?,
            Err(_) => {
                return Err(PulsarError::Broker {
                    party: me.to_string(),
                    addr: link.recv_broker.addr(),
                    reason: format!("no consumer on `{}` within 60 s", link.recv_topic),
                });
            }
        }
        *ready = true;
        Ok(())
    }

    fn set_up_send(&self, link: &Link) -> Result<(), PulsarError> {
        let mut ready = link.send_ready.lock();
        if !*ready {
            if link.replicate {
                // The receiver's subscription is on its own broker, out of reach; the
                // namespace's retention there keeps what arrives before it subscribes.
                self.ensure_replication(
                    &link.id.session,
                    link.id.me.party_id.as_str(),
                    link.id.peer.party_id.as_str(),
                    Some(&link.send_topic),
                )?;
                self.watch_replication(link);
            } else {
                self.prepare_topic(
                    &link.id.session,
                    &link.send_party,
                    &link.send_broker,
                    &link.send_topic,
                )?;
            }
            *ready = true;
        }
        Ok(())
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

impl Inner {
    /// The client of `broker`, connected on first use.
    async fn client(&self, broker: &Broker) -> Result<Pulsar<TokioExecutor>, String> {
        let url = broker.service_url();
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&url) {
            return Ok(c.clone());
        }
        let client = Pulsar::builder(url.clone(), TokioExecutor)
            .with_connection_retry_options(ConnectionRetryOptions {
                max_retries: 3,
                connection_timeout: Duration::from_secs(10),
                ..ConnectionRetryOptions::default()
            })
            .with_operation_retry_options(OperationRetryOptions {
                max_retries: Some(5),
                ..OperationRetryOptions::default()
            })
            .build()
            .await
            .map_err(|e| format!("connect to {url}: {e}"))?;
        clients.insert(url, client.clone());
        Ok(client)
    }
}

/// Whether a set-up error may pass: a broker that does not answer (stopped, restarting,
/// overloaded) rather than a configuration the retries cannot mend.
fn transient(e: &PulsarError) -> bool {
    match e {
        PulsarError::Route { field, reason, .. } => {
            field == "mng_port" && reason.contains("unreachable")
        }
        PulsarError::Broker { reason, .. } => {
            reason.contains("HTTP 5")
                || reason.contains("no consumer")
                || reason.contains("connect")
        }
        PulsarError::Config(_) => false,
    }
}

/// Runs a link's set-up, again after a transient error (a broker restarting) until
/// `deadline`, so that an outage of a broker delays a send or a receive instead of failing it.
fn retry_setup(
    deadline: Instant,
    cancel: &CancelToken,
    mut setup: impl FnMut() -> Result<(), PulsarError>,
) -> Result<(), PulsarError> {
    let mut pause = Duration::from_millis(100);
    loop {
        match setup() {
            Err(e)
                if transient(&e) && Instant::now() + pause < deadline && !cancel.is_canceled() =>
            {
                tracing::debug!(error = %e, "Set-up failed; retrying.");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Publishes `frame` on the link's send topic, retrying until `deadline`.
async fn publish(
    inner: Arc<Inner>,
    link: Arc<Link>,
    topic: String,
    key: MessageKey,
    frame: Vec<u8>,
    deadline: Instant,
) -> Result<(), String> {
    let addr = link.send_broker.addr();
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut producer = link.producer.lock().await;
            if producer.is_none() {
                let client = inner.client(&link.send_broker).await?;
                let built = client
                    .producer()
                    .with_topic(topic.clone())
                    .with_options(ProducerOptions {
                        compression: compression(
                            inner
                                .run(&link.id.session, link.id.me.party_id.as_str())
                                .compression,
                        ),
                        ..ProducerOptions::default()
                    })
                    .build()
                    .await
                    .map_err(|e| format!("create a producer: {e}"))?;
                *producer = Some(built);
            }
            let p = producer.as_mut().expect("set above");
            let receipt = p
                .create_message()
                .with_content(frame.clone())
                .with_property(NAME_PROPERTY, key.name.as_str())
                .with_property(TAG_PROPERTY, key.tag.as_str())
                .send_non_blocking()
                .await
                .map_err(|e| format!("send: {e}"));
            drop(producer);
            receipt?
                .await
                .map_err(|e| format!("send receipt: {e}"))
                .map(drop)
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = match tokio::time::timeout(left, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no receipt within {:.1?}", left)),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(reason) => {
                *link.producer.lock().await = None;
                if Instant::now() + backoff >= deadline {
                    return Err(format!(
                        "broker {addr} of party {} (topic `{topic}`): {reason}",
                        link.send_party
                    ));
                }
                tracing::debug!(%key, broker = %addr, %reason, "Publish failed; retrying.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Moves the messages of one receive topic into the mailbox.
struct Receiver {
    mailbox: Arc<Mailbox>,
    inner: std::sync::Weak<Inner>,
    topic: String,
    subscription: String,
    broker: Broker,
    session: String,
    src: Party,
    dst: Party,
    max_frame_size: usize,
    prefetch: u32,
    stop: Arc<AtomicBool>,
}

/// How long the first subscribe may keep failing before the setup reports it.
const FIRST_SUBSCRIBE: Duration = Duration::from_secs(10);

impl Receiver {
    fn broker_error(&self, reason: String) -> PulsarError {
        PulsarError::Broker {
            party: self.dst.party_id.to_string(),
            addr: self.broker.addr(),
            reason,
        }
    }

    async fn open(&self) -> Result<Consumer<Vec<u8>, TokioExecutor>, String> {
        let inner = self.inner.upgrade().ok_or("the transport is gone")?;
        let client = inner.client(&self.broker).await?;
        client
            .consumer()
            .with_topic(self.topic.clone())
            .with_subscription(self.subscription.clone())
            .with_subscription_type(SubType::Failover)
            .with_options(
                ConsumerOptions::default()
                    .with_receiver_queue_size(self.prefetch.max(1))
                    .with_initial_position(InitialPosition::Earliest),
            )
            .build()
            .await
            .map_err(|e| format!("subscribe to `{}`: {e}", self.topic))
    }

    async fn run(self, started: std::sync::mpsc::SyncSender<Result<(), PulsarError>>) {
        let mut started = Some(started);
        let first = Instant::now();
        let mut backoff = Duration::from_millis(100);
        while !self.stop.load(Ordering::SeqCst) {
            let mut consumer = match self.open().await {
                Ok(c) => c,
                Err(reason) => {
                    if first.elapsed() > FIRST_SUBSCRIBE
                        && let Some(tx) = started.take()
                    {
                        let _ = tx.send(Err(self.broker_error(reason)));
                        return;
                    }
                    tracing::warn!(topic = %self.topic, broker = %self.broker.addr(), %reason,
                        "Cannot subscribe; retrying.");
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
                    let _ = consumer.close().await;
                    return;
                }
                match next {
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        tracing::warn!(topic = %self.topic, broker = %self.broker.addr(),
                            error = %e, "Consumer failed; resubscribing.");
                        break;
                    }
                    Ok(Some(Ok(message))) => {
                        if !self.deliver(&mut consumer, message).await {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Admits one message into the mailbox and acknowledges it; returns false if the
    /// acknowledgement failed (the consumer resubscribes and the broker redelivers).
    async fn deliver(
        &self,
        consumer: &mut Consumer<Vec<u8>, TokioExecutor>,
        message: pulsar::consumer::Message<Vec<u8>>,
    ) -> bool {
        let property = |name: &str| -> Option<String> {
            message
                .payload
                .metadata
                .properties
                .iter()
                .find(|kv| kv.key == name)
                .filter(|kv| kv.value.len() <= MAX_NAME)
                .map(|kv| kv.value.clone())
        };
        let data = &message.payload.data;
        let (name, tag) = match (property(NAME_PROPERTY), property(TAG_PROPERTY)) {
            (Some(n), Some(t)) if data.len() <= self.max_frame_size => (n, t),
            _ => {
                tracing::warn!(
                    topic = %self.topic, broker = %self.broker.addr(), peer = %self.src,
                    n_bytes = data.len(), max = self.max_frame_size,
                    "Dropped a message without fate properties or over max_frame_size."
                );
                // Acknowledged, so that it is not redelivered; nothing of it is kept.
                return consumer.ack(&message).await.is_ok();
            }
        };
        let key = MessageKey {
            session_id: self.session.clone(),
            name,
            tag,
            src: self.src.clone(),
            dst: self.dst.clone(),
        };
        // The mailbox refuses a frame nobody waits for while it is over its bounds; the
        // message stays unacknowledged (the receiver queue bounds how many) until it fits.
        loop {
            match self.mailbox.put(&key, data.clone()) {
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
                    tokio::time::sleep(CANCEL_POLL).await;
                }
            }
        }
        consumer.ack(&message).await.is_ok()
    }
}

impl Transport for PulsarTransport {
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
                    "party {} is not served by this node's pulsar transport",
                    key.src
                ),
            ));
        }
        let fail = |e: PulsarError| FederationError::transport(&key.dst, e.to_string());
        let link = self
            .link(&key.session_id, &key.src, &key.dst)
            .map_err(fail)?;
        let deadline = Instant::now() + self.inner.config.send_timeout;
        retry_setup(deadline, cancel, || self.set_up_send(&link)).map_err(fail)?;
        let topic = self.full_topic(&key.session_id, &link.send_topic);
        // A moment past the publish's own deadline, so that its error (naming the broker)
        // arrives rather than a bare timeout.
        self.block(
            key,
            deadline + Duration::from_secs(1),
            cancel,
            publish(
                self.inner.clone(),
                link,
                topic,
                key.clone(),
                frame,
                deadline,
            ),
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
                    "party {} is not served by this node's pulsar transport",
                    key.dst
                ),
            ));
        }
        let fail = |e: PulsarError| FederationError::transport(&key.src, e.to_string());
        let link = self
            .link(&key.session_id, &key.dst, &key.src)
            .map_err(fail)?;
        retry_setup(deadline, cancel, || self.set_up_recv(&link)).map_err(fail)?;
        self.inner.mailbox.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        "pulsar"
    }

    fn configure_session(&self, session_id: &str, party: &Party, run: &fate_types::BrokerRun) {
        self.inner
            .runs
            .lock()
            .entry((session_id.to_string(), party.party_id.as_str().to_string()))
            .or_default()
            .overlay(run);
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
        let runtime = self.inner.runtime.enter();
        for link in &links {
            link.stop.store(true, Ordering::SeqCst);
            if let Some(mut producer) = link.producer.try_lock().ok().and_then(|mut p| p.take()) {
                self.inner.runtime.spawn(async move {
                    let _ = producer.close().await;
                });
            }
        }
        // The session's namespace goes from the brokers of this node's parties, where they
        // receive (as FATE's destroy does on its own broker), whoever created it there. One
        // this node created on a peer's broker is the peer's to delete when it is done: a
        // sender that ends first must not take the frames its peer has yet to read.
        let mut parties: HashSet<String> =
            links.iter().map(|l| l.id.me.party_id.0.clone()).collect();
        // Replication: what this node sent is on its own broker until replicated; let the
        // replicators deliver it (bounded) before the namespace goes.
        let replicated: Vec<(String, String, Broker, String)> = links
            .iter()
            .filter(|l| l.replicate && *l.send_ready.lock())
            .map(|l| {
                (
                    l.id.me.party_id.0.clone(),
                    l.id.peer.party_id.0.clone(),
                    l.send_broker.clone(),
                    l.send_topic.clone(),
                )
            })
            .collect();
        // (A producer still held by a send in flight is dropped with the link, inside the
        // runtime: its drop spawns its closing.)
        drop(links);
        drop(runtime);
        let tenant = &self.inner.config.tenant;
        let drained_by = Instant::now() + Duration::from_secs(30);
        for (me, peer, broker, topic) in replicated {
            let admin = Admin::new(&me, &broker);
            loop {
                match admin.replication_backlog(tenant, session_id, &topic, &peer) {
                    Ok(Some(backlog)) if backlog > 0 && Instant::now() < drained_by => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Ok(Some(backlog)) if backlog > 0 => {
                        tracing::warn!(session = session_id, %topic, %peer, backlog,
                            "Cleaning up with frames not yet replicated to the peer's broker.");
                        break;
                    }
                    _ => break,
                }
            }
        }
        parties.extend(
            self.inner
                .namespaces
                .lock()
                .remove(session_id)
                .unwrap_or_default()
                .into_iter()
                .filter(|p| self.inner.local.contains(p)),
        );
        for party in parties {
            let broker = match self.inner.config.routes.broker(&party) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(session = session_id, error = %e, "Cannot clean up.");
                    continue;
                }
            };
            let admin = Admin::new(&party, &broker);
            if let Err(e) = admin.delete_namespace(tenant, session_id) {
                tracing::warn!(session = session_id, error = %e, "Cannot delete a namespace.");
            }
        }
        self.inner.mailbox.cleanup(session_id);
    }
}

impl Drop for PulsarTransport {
    fn drop(&mut self) {
        // The client's producers and connections spawn their closing on the runtime when
        // dropped: drop them inside it.
        let _runtime = self.inner.runtime.enter();
        let links: Vec<Arc<Link>> = self.inner.links.lock().drain().map(|(_, l)| l).collect();
        for link in &links {
            link.stop.store(true, Ordering::SeqCst);
        }
        drop(links);
        if let Ok(mut clients) = self.inner.clients.try_lock() {
            clients.clear();
        }
    }
}
