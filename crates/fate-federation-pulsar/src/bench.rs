//! Throughput of the Pulsar transport against the `pulsar` crate alone (for `fate bench
//! federation --backend pulsar`).
//!
//! Ours: two [`PulsarTransport`]s, one per party as two nodes run them (guest 9999 and host
//! 10000 of the route table), move one object sliced by the federation's wire format
//! ([`fate_federation::bench::ours`]): in replication mode produced on 9999's broker and
//! geo-replicated to 10000's, in client mode produced on 10000's broker; consumed there by
//! 10000. Each slice is sent with the transport's producer (LZ4, as FATE's) and its receipt
//! awaited before the next, as `Federation::remote` sends them one after the other.
//!
//! Raw: the `pulsar` crate on its own against the receiving party's broker (a namespace of
//! its own in FATE's tenant, deleted after): one persistent topic, a producer with the same
//! compression sending the same bytes in messages of the same size, each receipt awaited
//! before the next send, and a consumer with the transport's receiver queue and one
//! acknowledgement per message, after a few messages untimed as ours warms up; the clock
//! runs from the first send until the consumer holds the last byte. The raw run has no
//! second broker: in replication mode the ratio includes the replication hop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_federation::bench::{self as common, BrokerReport};
use fate_federation::{DEFAULT_MAX_MESSAGE_SIZE, Transport, wire};
use futures_util::StreamExt;
use pulsar::compression::{Compression, CompressionLz4};
use pulsar::consumer::InitialPosition;
use pulsar::{ConsumerOptions, ProducerOptions, Pulsar, SubType, TokioExecutor};

use crate::{
    Admin, DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Mode, PulsarConfig, PulsarError, PulsarTransport,
    RouteTable,
};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Brokers of guest 9999 (the sender) and host 10000 (the receiver).
    pub routes: RouteTable,
    /// Replication (FATE's and the node's default) or client mode.
    pub mode: Mode,
    /// Replication mode: the brokers' own cluster name (FATE's `pulsar.cluster`).
    pub cluster: String,
    /// Size of the object (and of the raw run).
    pub bytes: usize,
    /// The federation's slice size, and the raw run's message size.
    pub max_message_size: usize,
}

impl BenchOptions {
    /// `bytes` in FATE's 1 MiB slices, in replication mode, cluster `standalone`.
    pub fn new(routes: RouteTable, bytes: usize) -> Self {
        BenchOptions {
            routes,
            mode: Mode::Replication,
            cluster: "standalone".into(),
            bytes,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// Runs ours, then raw, in this process. Call it outside any async runtime.
pub fn bench(options: &BenchOptions) -> Result<BrokerReport, PulsarError> {
    let node = |party: &str| {
        let mut config = PulsarConfig::new(options.routes.clone(), vec![party.to_string()]);
        config.mode = options.mode;
        config.cluster = options.cluster.clone();
        config.max_frame_size = config
            .max_frame_size
            .max(wire::max_frame_len(options.max_message_size));
        config.mailbox_bytes = config.mailbox_bytes.max(2 * config.max_frame_size);
        PulsarTransport::start(config).map(|t| t as Arc<dyn Transport>)
    };
    let session = common::session_id();
    common::broker_bench(
        common::BrokerRun {
            backend: "pulsar",
            mode: match options.mode {
                Mode::Replication => "replication",
                Mode::Client => "client",
            },
            bytes: options.bytes,
            max_message_size: options.max_message_size,
            session: &session,
        },
        node,
        |payload| raw(options, payload),
        PulsarError::Config,
    )
}

/// The raw run on the receiver's broker in a namespace of its own; returns its time and the
/// bytes the consumer received, in order.
fn raw(options: &BenchOptions, payload: &[u8]) -> Result<(Duration, Vec<u8>), PulsarError> {
    let party = common::receiver().party_id.as_str().to_string();
    let broker = options.routes.broker(&party)?;
    let admin = Admin::new(&party, &broker);
    let namespace = format!("{}_raw", common::session_id());
    let topic = "raw";
    let clusters = admin.clusters()?;
    admin.create_tenant(DEFAULT_TENANT, &clusters)?;
    admin.create_namespace(DEFAULT_TENANT, &namespace)?;
    let result = admin
        .create_subscription(DEFAULT_TENANT, &namespace, topic, DEFAULT_SUBSCRIPTION)
        .and_then(|()| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| PulsarError::Config(format!("cannot start a runtime: {e}")))?;
            let prefetch = PulsarConfig::new(RouteTable::default(), Vec::new()).prefetch;
            let deadline = Duration::from_secs(60 + (payload.len() >> 20) as u64 / 10);
            let url = broker.service_url();
            let full_topic = format!("persistent://{DEFAULT_TENANT}/{namespace}/{topic}");
            runtime
                .block_on(async {
                    tokio::time::timeout(
                        deadline,
                        raw_run(
                            &url,
                            &full_topic,
                            payload,
                            options.max_message_size,
                            prefetch,
                        ),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("not done within {deadline:?}")))
                })
                .map_err(|reason| PulsarError::Broker {
                    party: party.clone(),
                    addr: broker.addr(),
                    reason: format!("raw pulsar run: {reason}"),
                })
        });
    if let Err(e) = admin.delete_namespace(DEFAULT_TENANT, &namespace) {
        tracing::warn!(%namespace, error = %e, "Cannot delete the raw run's namespace.");
    }
    result
}

async fn raw_run(
    url: &str,
    topic: &str,
    payload: &[u8],
    message_size: usize,
    prefetch: u32,
) -> Result<(Duration, Vec<u8>), String> {
    let client = Pulsar::builder(url.to_string(), TokioExecutor)
        .build()
        .await
        .map_err(|e| format!("connect to {url}: {e}"))?;
    let consumer: pulsar::Consumer<Vec<u8>, TokioExecutor> = client
        .consumer()
        .with_topic(topic.to_string())
        .with_subscription(DEFAULT_SUBSCRIPTION)
        .with_subscription_type(SubType::Failover)
        .with_options(
            ConsumerOptions::default()
                .with_receiver_queue_size(prefetch.max(1))
                .with_initial_position(InitialPosition::Earliest),
        )
        .build()
        .await
        .map_err(|e| format!("subscribe to `{topic}`: {e}"))?;
    let mut producer = client
        .producer()
        .with_topic(topic.to_string())
        .with_options(ProducerOptions {
            compression: Some(Compression::Lz4(CompressionLz4::default())),
            ..ProducerOptions::default()
        })
        .build()
        .await
        .map_err(|e| format!("create a producer: {e}"))?;

    // A few messages first, untimed, as ours warms up: the topic's first ledger, the
    // connections' buffers.
    let warm_up = payload.len().min(4 * message_size);
    let (c, _, _) = raw_phase(&mut producer, consumer, &payload[..warm_up], message_size).await?;
    let start = Instant::now();
    let (_, received, done) = raw_phase(&mut producer, c, payload, message_size).await?;
    let _ = producer.close().await;
    Ok((done - start, received))
}

/// Sends `payload` in messages of `message_size`, each receipt awaited before the next, while
/// `consumer` takes them; returns the consumer, the bytes taken and when the last arrived.
async fn raw_phase(
    producer: &mut pulsar::Producer<TokioExecutor>,
    mut consumer: pulsar::Consumer<Vec<u8>, TokioExecutor>,
    payload: &[u8],
    message_size: usize,
) -> Result<(pulsar::Consumer<Vec<u8>, TokioExecutor>, Vec<u8>, Instant), String> {
    let total = payload.len();
    let consume = tokio::spawn(async move {
        let mut received = Vec::with_capacity(total);
        while received.len() < total {
            let message = consumer
                .next()
                .await
                .ok_or("the consumer ended")?
                .map_err(|e| format!("consume: {e}"))?;
            received.extend_from_slice(&message.payload.data);
            consumer
                .ack(&message)
                .await
                .map_err(|e| format!("ack: {e}"))?;
        }
        let done = Instant::now();
        Ok::<_, String>((consumer, received, done))
    });
    for (offset, len) in common::raw_messages(total, message_size) {
        producer
            .create_message()
            .with_content(payload[offset..offset + len].to_vec())
            .send_non_blocking()
            .await
            .map_err(|e| format!("send: {e}"))?
            .await
            .map_err(|e| format!("send receipt: {e}"))?;
    }
    consume
        .await
        .map_err(|e| format!("the consumer task failed: {e}"))?
}
