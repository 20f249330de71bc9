//! Throughput of the RabbitMQ transport against lapin alone (for `fate bench federation
//! --backend rabbitmq`).
//!
//! Ours: two [`RabbitTransport`]s, one per party as two nodes run them (guest 9999 and host
//! 10000 of the route table), move one object sliced by the federation's wire format
//! ([`fate_federation::bench::ours`]): in replication mode through 9999's broker, the
//! federation link and 10000's broker; in client mode through 9999's broker alone. Each slice
//! is published persistent with a publisher confirm awaited before the next, as
//! `Federation::remote` sends them one after the other.
//!
//! Raw: lapin on its own against the sending party's broker (the admin user of the route
//! table, a vhost of its own, deleted after): one durable queue, the same bytes in messages of
//! the same size, each persistent and confirmed before the next is published, consumed with
//! the transport's prefetch and one acknowledgement per message, after a few messages
//! untimed as ours warms up; the clock runs from the first publish until the consumer holds
//! the last byte. The raw run has no second broker:
//! in replication mode the ratio includes the federation link's hop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_federation::bench::{self as common, BrokerReport};
use fate_federation::{DEFAULT_MAX_MESSAGE_SIZE, Transport, wire};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::transport::{amqp_uri, declare};
use crate::{Management, Mode, RabbitConfig, RabbitError, RabbitTransport, RouteTable};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Brokers of guest 9999 (the sender) and host 10000 (the receiver), each entry with its
    /// broker's admin `user` and `password`.
    pub routes: RouteTable,
    /// Replication (FATE's and the node's default) or client mode.
    pub mode: Mode,
    /// Size of the object (and of the raw run).
    pub bytes: usize,
    /// The federation's slice size, and the raw run's message size.
    pub max_message_size: usize,
}

impl BenchOptions {
    /// `bytes` in FATE's 1 MiB slices, in replication mode.
    pub fn new(routes: RouteTable, bytes: usize) -> Self {
        BenchOptions {
            routes,
            mode: Mode::Replication,
            bytes,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// Runs ours, then raw, in this process. Call it outside any async runtime.
pub fn bench(options: &BenchOptions) -> Result<BrokerReport, RabbitError> {
    let node = |party: &str| {
        let mut config = RabbitConfig::new(
            options.routes.clone(),
            vec![party.to_string()],
            options.mode,
        );
        config.max_frame_size = config
            .max_frame_size
            .max(wire::max_frame_len(options.max_message_size));
        config.mailbox_bytes = config.mailbox_bytes.max(2 * config.max_frame_size);
        RabbitTransport::start(config).map(|t| t as Arc<dyn Transport>)
    };
    let session = common::session_id();
    common::broker_bench(
        common::BrokerRun {
            backend: "rabbitmq",
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
        RabbitError::Config,
    )
}

/// The raw run on the sender's broker in a vhost of its own; returns its time and the bytes
/// the consumer received, in order.
fn raw(options: &BenchOptions, payload: &[u8]) -> Result<(Duration, Vec<u8>), RabbitError> {
    let party = common::sender().party_id.as_str().to_string();
    let broker = options.routes.broker(&party)?.clone();
    let admin = Management::new(&party, &broker)?;
    let (user, password) = (
        broker.user.clone().unwrap_or_default(),
        broker.password.clone().unwrap_or_default(),
    );
    let vhost = format!("{}-raw", common::session_id());
    admin.create_vhost(&vhost)?;
    let result = admin.grant(&vhost, &user).and_then(|()| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| RabbitError::Config(format!("cannot start a runtime: {e}")))?;
        let uri = amqp_uri(&broker, &user, &password, &vhost, None);
        let prefetch = RabbitConfig::new(RouteTable::default(), Vec::new(), options.mode).prefetch;
        let deadline = Duration::from_secs(60 + (payload.len() >> 20) as u64 / 10);
        runtime
            .block_on(async {
                tokio::time::timeout(
                    deadline,
                    raw_run(&uri, payload, options.max_message_size, prefetch),
                )
                .await
                .unwrap_or_else(|_| Err(format!("not done within {deadline:?}")))
            })
            .map_err(|reason| RabbitError::Broker {
                party: party.clone(),
                addr: broker.amqp_addr(),
                reason: format!("raw lapin run: {reason}"),
            })
    });
    if let Err(e) = admin.delete_vhost(&vhost) {
        tracing::warn!(%vhost, error = %e, "Cannot delete the raw run's vhost.");
    }
    result
}

/// The raw run's queue (in its own vhost).
const QUEUE: &str = "raw";

async fn raw_run(
    uri: &str,
    payload: &[u8],
    message_size: usize,
    prefetch: u16,
) -> Result<(Duration, Vec<u8>), String> {
    let open = || async {
        let connection = Connection::connect(uri, ConnectionProperties::default())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("open a channel: {e}"))?;
        declare(&channel, QUEUE).await?;
        Ok::<_, String>((connection, channel))
    };
    let (consumer_connection, consumer_channel) = open().await?;
    consumer_channel
        .basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(|e| format!("basic.qos: {e}"))?;
    let consumer = consumer_channel
        .basic_consume(
            QUEUE.into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("consume: {e}"))?;
    let (publisher_connection, publisher) = open().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| format!("confirm.select: {e}"))?;

    // A few messages first, untimed, as ours warms up.
    let warm_up = payload.len().min(4 * message_size);
    let (c, _, _) = raw_phase(&publisher, consumer, &payload[..warm_up], message_size).await?;
    let start = Instant::now();
    let (_, received, done) = raw_phase(&publisher, c, payload, message_size).await?;
    let _ = publisher_connection.close(200, "done".into()).await;
    let _ = consumer_connection.close(200, "done".into()).await;
    Ok((done - start, received))
}

/// Publishes `payload` in messages of `message_size`, each persistent and confirmed before
/// the next, while `consumer` takes them; returns the consumer, the bytes taken and when the
/// last arrived.
async fn raw_phase(
    publisher: &lapin::Channel,
    mut consumer: lapin::Consumer,
    payload: &[u8],
    message_size: usize,
) -> Result<(lapin::Consumer, Vec<u8>, Instant), String> {
    let total = payload.len();
    let consume = tokio::spawn(async move {
        let mut received = Vec::with_capacity(total);
        while received.len() < total {
            let delivery = consumer
                .next()
                .await
                .ok_or("the consumer ended")?
                .map_err(|e| format!("consume: {e}"))?;
            received.extend_from_slice(&delivery.data);
            delivery
                .ack(BasicAckOptions::default())
                .await
                .map_err(|e| format!("ack: {e}"))?;
        }
        Ok::<_, String>((consumer, received, Instant::now()))
    });
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/octet-stream".into());
    for (offset, len) in common::raw_messages(total, message_size) {
        let confirmation = publisher
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &payload[offset..offset + len],
                properties.clone(),
            )
            .await
            .map_err(|e| format!("publish: {e}"))?
            .await
            .map_err(|e| format!("publisher confirm: {e}"))?;
        if confirmation.is_nack() {
            return Err("the broker refused a message (nack)".into());
        }
    }
    consume
        .await
        .map_err(|e| format!("the consumer task failed: {e}"))?
}
