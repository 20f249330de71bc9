//! Pulsar federation backend (fate-spec §2.6): a [`fate_federation::Transport`] whose frames
//! travel through Apache Pulsar brokers named as FATE names them.
//!
//! - **Route table** ([`RouteTable`], FATE's `pulsar_route_table.yaml`): `<party_id>: {host,
//!   port, sslPort, proxy}` plus the admin REST port (`mng_port`, FATE keeps it in
//!   `service_conf.yaml`); `default: {proxy, domain, brokerPort, brokerSslPort}` resolves a
//!   party without an entry to `<party>.<domain>`.
//! - **Names**: tenant `fl-tenant`, one namespace per session (`fl-tenant/<session id>`),
//!   topics `{src_role}-{src_pid}-{dst_role}-{dst_pid}-{suffix}` (the namespace scopes the
//!   session), subscription `unique`.
//! - **Client mode**: a frame from `src` to `dst` is produced on `dst`'s broker (from the
//!   route table) and consumed there by `dst`; two parties may share one broker. Whoever
//!   touches a broker first in a session creates the tenant and the namespace there (an
//!   existing one is kept), and the sender creates the receiver's subscription before its
//!   first publish, so nothing sent before the receiver subscribes is lost.
//!
//! Invariants:
//! - Received frames go into the shared [`fate_federation::Mailbox`] (budget, per-session and
//!   per-party bounds, the waited-for frame always admitted, duplicates dropped). A message
//!   larger than `max_frame_size`, or without `fate-name`/`fate-tag` properties, is dropped
//!   (acknowledged, not kept) and logged naming the peer and the broker. The consumer's
//!   receiver queue (`prefetch`) bounds what a broker hands over before it is acknowledged.
//! - A message is acknowledged only once the mailbox holds it; a send counts only once the
//!   broker's receipt arrived (persistent topics). A `send` retries until its deadline; the
//!   mailbox drops a redelivered or republished key, so retries are idempotent.
//! - `cleanup(session)` deletes the session's topics (force, closing producers and
//!   consumers) and its namespace on the brokers of this node's parties (where they receive,
//!   as FATE's `destroy`), never on a peer's broker: the peer may still be reading there.
//! - Errors name the broker (`host:port`), the party and, for configuration, the
//!   route-table field.
//!
//! Large objects are sliced by [`fate_federation::Federation`] at `max_message_size`
//! (1 MiB); `max_frame_size` (default a 4 MiB slice and its header) is checked at start
//! against each local broker's `maxMessageSize` (Pulsar's default 5 MiB).
//!
//! - **Replication mode** (FATE's default): a frame is produced on the sender's own broker,
//!   and Pulsar's geo-replication carries it to the receiver's. The sender registers each
//!   peer's broker as a cluster named after the peer (service URLs; behind an SNI proxy
//!   `brokerServiceUrlTls`, `proxyServiceUrl pulsar+ssl://<proxy>`, `proxyProtocol SNI`,
//!   replication over TLS), allows the tenant on it, and sets replication on its send topic
//!   only (FATE replicates the whole session namespace to every party's broker, so the
//!   arbiter's broker would hold the guest's frames to the host). The session namespace
//!   retains frames (`topic_ttl`) that arrive before the receiver subscribes. Two parties on
//!   one broker need no replication. [`sni::check_sni_route`] checks the proxy hop.
//!
//! Not yet: the node's own connection to its broker over TLS (`pulsar+ssl://`).

mod admin;
pub mod bench;
pub mod probe;
pub mod route;
pub mod sni;
mod transport;

pub use admin::Admin;
pub use route::{Broker, DefaultRoute, RouteTable};
pub use transport::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Mode, PulsarConfig, PulsarTransport};

/// What went wrong, naming the party, the broker and the field.
#[derive(Debug, thiserror::Error)]
pub enum PulsarError {
    /// A route-table entry is missing, malformed, or its broker unreachable.
    #[error("pulsar_route_table.yaml: party {party}{}: {reason}", field_suffix(.field))]
    Route {
        /// The party id.
        party: String,
        /// The field of its entry (empty when the entry as a whole is wrong).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A broker answered with an error.
    #[error("pulsar broker {addr} of party {party}: {reason}")]
    Broker {
        /// The party whose broker it is.
        party: String,
        /// `host:port` of the broker.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The transport's configuration is inconsistent.
    #[error("pulsar transport: {0}")]
    Config(String),
}

fn field_suffix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(", field `{field}`")
    }
}
