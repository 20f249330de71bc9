//! A job's options for a broker federation: FATE's `rabbitmq_run` and `pulsar_run` job
//! parameters (fate-spec §2.6, §2.7, §3.2), as the DAG parser checked them. FATE hands these
//! dicts to its Python clients as keyword arguments; fate-rs takes the options that mean
//! something to its transports, typed and bounded, and refuses the others by name at submit.

use serde::{Deserialize, Serialize};

/// Pulsar's producer compressions (`pulsar_run.producer.compression_type`, FATE's default
/// `LZ4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerCompression {
    None,
    Lz4,
    Zlib,
    Zstd,
    Snappy,
}

/// One party's options for its broker federation; `None` where the job says nothing (the
/// node's setting applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRun {
    /// `max_message_size`: the largest slice of an object, in bytes (FATE's default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// `rabbitmq_run.connection.heartbeat`: the AMQP heartbeat asked of the broker, in seconds
    /// (0 turns heartbeats off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_secs: Option<u16>,
    /// `pulsar_run.producer.compression_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<BrokerCompression>,
    /// `pulsar_run.producer.max_pending_messages`: sends in flight before a send waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_messages: Option<u32>,
    /// `pulsar_run.topic_ttl`: minutes an unread frame stays on a session's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_ttl_minutes: Option<u32>,
}

impl BrokerRun {
    pub fn is_empty(&self) -> bool {
        *self == BrokerRun::default()
    }

    /// `other` over `self`: each option it sets replaces this one.
    pub fn overlay(&mut self, other: &BrokerRun) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            max_message_size,
            heartbeat_secs,
            compression,
            max_pending_messages,
            topic_ttl_minutes
        );
    }
}
