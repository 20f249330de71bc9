//! RabbitMQ federation backend (fate-spec §2.7): a [`fate_federation::Transport`] whose frames
//! travel through RabbitMQ brokers laid out as FATE lays them out.
//!
//! - **Route table** ([`RouteTable`], FATE's `rabbitmq_route_table.yaml`): `<party_id>: {host,
//!   port}` plus the management port and, for the parties this node serves, the admin
//!   credentials of their broker's management API.
//! - **Per session** `sid` and pair of parties: a RabbitMQ user `sid` (password `sid`, as FATE
//!   does: the peer's federation link must log in with it) with permissions on the vhost
//!   `"{sid}-{low_role}-{low_pid}-{high_role}-{high_pid}"` (the pair ordered by (role, party
//!   id)), created through the management API on the local party's broker.
//! - **Replication mode** ([`Mode::Replication`], one broker per party): a party publishes to
//!   `send-{sid}-{me}-{peer}` on its own broker and consumes `receive-{sid}-{peer}-{me}` there;
//!   a federation upstream and a policy (both named after the receive queue) make the broker
//!   pull the peer's `send-` queue into the local `receive-` queue.
//! - **Client mode** ([`Mode::Client`]): plain queues `{sid}-{src}-{dst}` and no upstream; a
//!   party publishes into its own broker and consumes its incoming queue as a client of the
//!   peer's broker (so a send never waits for the receiver to have set up its side, and a
//!   consumer keeps retrying until the peer's vhost and user exist).
//!
//! Invariants:
//! - Received frames go into the shared [`fate_federation::Mailbox`] (budget, per-session and
//!   per-party bounds, the waited-for frame always admitted, duplicates dropped). A message
//!   larger than `max_frame_size`, or without well-formed `fate-name`/`fate-tag` headers, is
//!   rejected (not requeued) and logged naming the peer and the broker; nothing of it is kept.
//!   The consumer's prefetch bounds what a broker hands over before it is acknowledged.
//! - A message is acknowledged to the broker only once the mailbox holds it; a publish counts
//!   as sent only once the broker confirmed it (publisher confirms, persistent messages,
//!   durable queues). A `send` retries until its deadline; the mailbox drops a redelivered or
//!   republished key, so retries are idempotent.
//! - `cleanup(session)` deletes the session's vhosts (with their queues, upstreams and
//!   policies) and its user on the brokers of the parties this node serves.
//! - Errors name the broker (`host:port`), the party and, for configuration, the route-table
//!   field.
//!
//! Large objects are sliced by [`fate_federation::Federation`] at `max_message_size` (1 MiB);
//! RabbitMQ 3.10 accepts messages up to 128 MiB (`max_message_size`) and lapin splits bodies
//! into frames of the negotiated `frame_max`, so a slice always fits.

pub mod bench;
mod mgmt;
pub mod probe;
pub mod route;
mod transport;

pub use mgmt::Management;
pub use route::{Broker, RouteTable};
pub use transport::{Mode, RabbitConfig, RabbitTransport};

/// What went wrong, naming the party, the broker and the field.
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    /// A route-table entry is missing, malformed or refused by its broker.
    #[error("rabbitmq_route_table.yaml: party {party}{}: {reason}", field_suffix(.field))]
    Route {
        /// The party id.
        party: String,
        /// The field of its entry (empty when the entry as a whole is wrong).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A broker answered with an error or could not be reached.
    #[error("broker {addr} of party {party}: {reason}")]
    Broker {
        /// The party whose broker it is.
        party: String,
        /// `host:port` of the broker.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The transport's configuration is inconsistent.
    #[error("rabbitmq transport: {0}")]
    Config(String),
}

fn field_suffix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(", field `{field}`")
    }
}
