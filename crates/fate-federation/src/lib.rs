//! Federation: how the parties of a FATE job exchange objects (fate-spec §2.1, §2.2, §2.8).
//!
//! A component talks to other parties through a [`Federation`], one party's view of one
//! federation session (`{job_id}_{task_name}_{task_version}`). It calls
//! [`Federation::remote`] to send a value to some parties and [`Federation::get`] to receive one
//! value from each of some parties. A message is identified by FATE's
//! (session id, name, tag, source party, destination party), see [`MessageKey`].
//!
//! Values are encoded with postcard and framed by the versioned binary format of [`wire`]:
//! objects larger than `max_message_size` travel as slices under derived keys, as FATE's
//! `__table_persistent_split__` tables do. Frames move between parties through a [`Transport`],
//! a small trait implemented here by the in-process [`local::LocalTransport`] and by network
//! backends (gRPC, RabbitMQ, Pulsar) in other crates. `testing::conformance` (feature
//! `testing`, never in release builds) is the suite every backend must pass;
//! [`faulty::FaultyTransport`] wraps any backend to drop, delay or
//! refuse the frames for one party in tests.
//!
//! Invariants:
//! - Each (name, tag, peer) is used at most once per direction per session by a `Federation`
//!   and its clones; a second use is [`FederationError::DuplicateKey`] (fate-spec §2.1).
//! - Peer data is hostile: every frame is checked (magic, version, declared sizes against
//!   `max_object_size` before any allocation, slice order and sizes, CRC-32) and every failure
//!   is an error naming the peer and the message, never a panic.
//! - A `get` never waits past its deadline and wakes when the session's [`CancelToken`] is set.
//! - This crate knows nothing about tables: the runtime sends a table as a sequence of
//!   partition objects through this API.

pub mod bench;
pub mod bounds;
mod error;
pub mod faulty;
mod federation;
pub mod local;
pub mod mailbox;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fate_types::Party;
use serde::{Deserialize, Serialize};

pub use bounds::MailboxLimits;
pub use error::FederationError;
pub use federation::Federation;
pub use local::LocalTransport;
pub use mailbox::Mailbox;
pub use wire::WireError;

/// FATE's default split threshold, `federation.split_large_object.max_message_size`
/// (1 MiB, fate-spec §2.2, §2.8).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Default bound on one whole object: the 2 GiB − 1 gRPC message limit of FATE's channels
/// (fate-spec §2.8).
pub const DEFAULT_MAX_OBJECT_SIZE: usize = (1 << 31) - 1;

/// Default time a `get` waits for its message.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Identifies one message: FATE's (session id, name, tag, source party, destination party).
///
/// Serde support is for self-describing formats (JSON): `PartyId` deserializes from either a
/// string or a number, which binary formats such as postcard cannot express, so binary
/// backends carry the fields individually.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageKey {
    /// Federation session id, `{job_id}_{task_name}_{task_version}` (fate-spec §2.1).
    pub session_id: String,
    /// Variable name (1.x transfer variable name, 2.x key).
    pub name: String,
    /// Tag: the namespace path, e.g. `default.iterations-3.batches-0`.
    pub tag: String,
    /// The sending party.
    pub src: Party,
    /// The receiving party.
    pub dst: Party,
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` (tag `{}`) from {} to {} in session `{}`",
            self.name, self.tag, self.src, self.dst, self.session_id
        )
    }
}

/// Which way a message goes, seen from the local party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// `remote`: the local party sends.
    Send,
    /// `get`: the local party receives.
    Recv,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Send => "send",
            Direction::Recv => "receive",
        })
    }
}

/// A shared flag that cancels the waits of a federation session (job kill, task timeout).
/// Clones share the flag; once set it stays set.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not canceled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every wait that observes this token (or one of its clones).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] has been called.
    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A backend that moves opaque frames between parties.
///
/// Frames are delivered by key: `recv(key)` returns the frame sent with `send(key)`, in any
/// order relative to other keys. Each key carries at most one frame; the [`Federation`] above
/// never sends a key twice. Implemented by [`LocalTransport`] here and by network backends in
/// other crates; every implementation must pass `testing::conformance` (feature `testing`).
pub trait Transport: Send + Sync + 'static {
    /// Hands `frame` over for delivery to `key.dst`. Must not block on the receiver.
    fn send(&self, key: &MessageKey, frame: Vec<u8>) -> Result<(), FederationError>;

    /// [`Transport::send`] that gives up with [`FederationError::Canceled`] soon after
    /// `cancel` is set, for backends whose `send` waits for an acknowledgement (a network
    /// backend retrying an unreachable peer until its send deadline). The [`Federation`] sends
    /// through this, so stopping a task frees a thread blocked in a send. Default: `send`,
    /// for backends whose `send` never waits.
    fn send_cancellable(
        &self,
        key: &MessageKey,
        frame: Vec<u8>,
        cancel: &CancelToken,
    ) -> Result<(), FederationError> {
        let _ = cancel;
        self.send(key, frame)
    }

    /// Blocks until the frame for `key` arrives and returns it. Returns
    /// [`FederationError::Timeout`] (see [`FederationError::timeout`]) once `deadline` passes and
    /// [`FederationError::Canceled`] soon after `cancel` is set, even while waiting.
    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError>;

    /// Short backend name for logs and errors (`local`, `grpc`, `rabbitmq`).
    fn name(&self) -> &'static str;

    /// Takes the options a job gives this backend for `party`'s links in session
    /// `session_id` (FATE's `rabbitmq_run` / `pulsar_run`, checked by the DAG parser), before
    /// the party's first send or receive in it; [`Transport::cleanup`] forgets them. Default:
    /// a backend without such options ignores them, as FATE does.
    fn configure_session(&self, _session_id: &str, _party: &Party, _run: &fate_types::BrokerRun) {}

    /// Drops every pending frame of a session (job cleanup). Default: nothing to drop.
    /// Takes a *session* id; a job's sessions are dropped with [`cleanup_job`].
    fn cleanup(&self, _session_id: &str) {}
}

/// Drops the pending frames of every federation session of job `job_id`: for each task (name,
/// latest version) every session `{job_id}_{task}_{v}` with `v` up to that version (reruns
/// bump the version, and older versions may still hold frames).
///
/// Sessions are named exactly rather than by the prefix `{job_id}_`: job ids may contain `_`,
/// so a prefix would also match another job's sessions (job `a` and job `a_b`).
pub fn cleanup_job<'a>(
    transport: &dyn Transport,
    job_id: &str,
    tasks: impl IntoIterator<Item = (&'a str, u32)>,
) {
    let mut sessions = std::collections::BTreeSet::new();
    for (task, latest) in tasks {
        for version in 0..=latest {
            sessions.insert(fate_types::federation_session_id(job_id, task, version));
        }
    }
    for session_id in &sessions {
        transport.cleanup(session_id);
    }
}

/// Sees every frame a [`Federation`] hands to or receives from its transport, e.g. to record a
/// transcript for privacy tests (`testing::Transcript`, feature `testing`).
///
/// `key` is the transport key; slices of a split object carry derived names
/// ([`wire::slice_name`]). The hook gets the frame itself rather than only its length so a
/// privacy test can check what a party could read, not just how much.
pub trait Observer: Send + Sync {
    /// Called as a frame is handed to the transport.
    fn on_send(&self, key: &MessageKey, frame: &[u8]);
    /// Called when a frame has been received from the transport, before it is checked.
    fn on_recv(&self, key: &MessageKey, frame: &[u8]);
}

/// Limits and timeouts of a [`Federation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederationConfig {
    /// Largest encoded object sent as one frame; larger objects are cut into slices of this
    /// size (FATE default 1 MiB, fate-spec §2.2). Values outside `1..=u32::MAX` are clamped.
    pub max_message_size: usize,
    /// Largest encoded object this party sends or accepts (default 2 GiB − 1). A received
    /// header declaring more is refused before anything is allocated.
    pub max_object_size: usize,
    /// How long one `get` waits for all of its messages.
    pub timeout: Duration,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}
