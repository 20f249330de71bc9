//! gRPC federation for parties on separate machines: eggroll's rollsite protocol
//! (`DataTransferService` of `proxy.proto`, fate-spec §2.3), FATE's `route_table.json`
//! (§2.5), routers that deliver or forward, and mutual TLS with rustls (ring).
//!
//! Pieces:
//! - [`GrpcTransport`] implements [`fate_federation::Transport`]: `send` pushes a frame towards
//!   the destination party by the route table and returns once the destination's mailbox
//!   holds it; `recv` waits on the transport's [`Mailbox`], filled by its own gRPC server.
//! - [`Router`] is a site's (or an exchange's) router: it forwards each push by its route
//!   table, packet by packet, so direct (router to router) and exchange (star) topologies work.
//! - [`RouteTable`] / [`Routes`] read FATE's route table unchanged and reload it on change.
//! - [`certs`] makes a CA and per-site certificates named `<party_id>.<domain>`; [`TlsConfig`]
//!   turns them into server and client TLS with client certificates required.
//! - [`osx`]: every router also serves FATE 2.x OSX's queue mode (`PrivateTransferTransport`:
//!   push, pop, peek, release; fate-spec §2.4), so FATE's OSX federation backend can use it,
//!   and forwards such pushes between sites as OSX does (`PrivateTransferProtocol.invoke`).
//! - [`bench::bench`] moves one object through two routers and checks it arrived unchanged,
//!   and measures that throughput against a raw gRPC stream in the same run.
//! - `testing` (cargo feature `testing`): network namespaces with rate-limited links, a TCP
//!   delay proxy and Apache Traffic Server as an SNI proxy, for tests of separate machines.
//!
//! Invariants:
//! - Peer input is bounded before it is buffered: each packet by `max_packet_size` (tonic's
//!   decoding limit), each frame by `max_frame_size` (checked on the declared length in the
//!   first packet, then on the bytes that arrive), each mailbox by `mailbox_bytes` and, per
//!   session and per sending party, by [`Limits::mailbox`] (`RESOURCE_EXHAUSTED` beyond them),
//!   except that the one frame a waiting `recv` needs is never refused (see [`Mailbox`]).
//!   Frames of sessions nobody asks for expire after `mailbox.unclaimed_ttl`.
//! - With TLS, a router accepts a packet only if the client certificate backs the source party
//!   the packet claims (see [`tls`]).
//! - A push is idempotent: a mailbox ignores a frame whose key it holds or has delivered in the
//!   session, so senders retry transient failures with backoff.
//! - Errors name the hop: `route to host:10000 via 127.0.0.1:9371 (router of 10000): connection
//!   refused`.
//!
//! The protobuf code (`proto`, `ptp`) is generated from `proto/proxy.proto` and
//! `proto/osx.proto` and committed; building needs no `protoc`.

mod client;
pub mod command;
mod envelope;
pub mod osx;
mod router;
mod transport;

pub mod bench;
pub mod certs;
pub mod route;
pub mod sni;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

/// eggroll's `com.webank.ai.eggroll.api.networking.proxy` messages and the
/// `DataTransferService` client and server (generated, see `proto/proxy.proto`).
#[allow(
    missing_docs,
    non_camel_case_types,
    clippy::all,
    clippy::pedantic,
    unused_qualifications
)]
pub mod proto {
    include!("generated.rs");
}

/// FATE 2.x OSX's `org.ppc.ptp` messages and the `PrivateTransferTransport` (queue mode) and
/// `PrivateTransferProtocol` clients and servers (generated, see `proto/osx.proto`).
#[allow(
    missing_docs,
    non_camel_case_types,
    clippy::all,
    clippy::pedantic,
    unused_qualifications
)]
pub mod ptp {
    include!("ptp_generated.rs");
}

use std::net::SocketAddr;

pub use fate_federation::MailboxLimits;

pub use client::{ClientOptions, RetryPolicy};
pub use command::{Command, CommandHandler, Commands};
pub use envelope::{MAX_HOPS, OPERATOR_PUSH, VERSION};
pub use fate_federation::Mailbox;
pub use osx::OsxConfig;
pub use route::{Hop, Route, RouteError, RouteTable, Routes};
pub use router::{Router, RouterConfig};
pub use tls::TlsConfig;
pub use transport::{GrpcTransport, TransportConfig};

/// Default largest frame: 16 MiB of slice plus the frame header. The federation layer slices
/// objects at `max_message_size` (1 MiB by default), so this leaves room for larger settings.
pub const DEFAULT_MAX_FRAME_SIZE: usize = fate_federation::wire::max_frame_len(16 << 20);
/// Default largest packet a server decodes (tonic's `max_decoding_message_size`).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 4 << 20;
/// Default mailbox budget: 2 GiB of frames waiting for their receivers.
pub const DEFAULT_MAILBOX_BYTES: usize = 2 << 30;

/// Size limits of a router or transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted or sent.
    pub max_frame_size: usize,
    /// Largest single packet decoded; larger ones are refused from their length prefix,
    /// before they are buffered.
    pub max_packet_size: usize,
    /// Most bytes of frames a mailbox holds (pending plus being received).
    pub mailbox_bytes: usize,
    /// Most bytes a mailbox holds per session and per sending party, and the expiry of frames
    /// nobody asks for (defaults: 256 MiB, 1 GiB, 10 minutes).
    pub mailbox: MailboxLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            mailbox_bytes: DEFAULT_MAILBOX_BYTES,
            mailbox: MailboxLimits::default(),
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), GrpcError> {
        if self.max_frame_size == 0 || self.max_packet_size < 1024 {
            return Err(GrpcError::Config(format!(
                "limits too small: max_frame_size {} must be positive and max_packet_size {} \
                 at least 1024 bytes",
                self.max_frame_size, self.max_packet_size
            )));
        }
        if self.mailbox_bytes < self.max_frame_size {
            return Err(GrpcError::Config(format!(
                "mailbox_bytes {} is smaller than max_frame_size {}: a single frame could \
                 never be received",
                self.mailbox_bytes, self.max_frame_size
            )));
        }
        let per = [
            ("mailbox.session_bytes", self.mailbox.session_bytes),
            ("mailbox.peer_bytes", self.mailbox.peer_bytes),
        ];
        for (name, bytes) in per {
            if bytes < self.max_frame_size {
                return Err(GrpcError::Config(format!(
                    "{name} {bytes} is smaller than max_frame_size {}: a single frame could \
                     never be received",
                    self.max_frame_size
                )));
            }
        }
        if self.mailbox.unclaimed_ttl.is_zero() {
            return Err(GrpcError::Config(
                "mailbox.unclaimed_ttl must be positive".to_string(),
            ));
        }
        Ok(())
    }
}

/// Why a router or transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrpcError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's message.
        reason: String,
    },
    /// TLS files or settings are unusable.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// Inconsistent settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The async runtime could not start or has stopped.
    #[error("runtime: {0}")]
    Runtime(String),
    /// The server failed while serving.
    #[error("server: {0}")]
    Serve(String),
    /// A route table problem.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A certificate problem.
    #[error(transparent)]
    Cert(#[from] certs::CertError),
}
