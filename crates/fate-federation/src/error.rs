//! The error type of the federation layer.

use std::time::Duration;

use fate_types::Party;

use crate::wire::WireError;
use crate::{Direction, MessageKey};

/// What went wrong while sending or receiving a message. Every message names the peer party
/// (`role:party_id`) and the message name and tag, so an operator can tell which hop failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The message did not arrive before the deadline.
    #[error("timed out after {waited:?} waiting for {key}")]
    Timeout {
        /// The transport key waited for (a slice key for a missing slice).
        key: Box<MessageKey>,
        /// How long the receiver waited.
        waited: Duration,
    },

    /// The session's cancel token was set while (or before) waiting.
    #[error("canceled while waiting for {key}")]
    Canceled {
        /// The transport key waited for.
        key: Box<MessageKey>,
    },

    /// A (name, tag, peer) was used a second time in the same direction (fate-spec §2.1).
    #[error(
        "duplicate {direction} of `{name}` (tag `{tag}`) with {peer}: each name, tag and party \
         may be used once per direction in a session"
    )]
    DuplicateKey {
        /// Whether the duplicate was a send or a receive.
        direction: Direction,
        /// Message name.
        name: String,
        /// Message tag.
        tag: String,
        /// The other party.
        peer: Party,
    },

    /// A frame from `peer` is malformed, inconsistent or over a limit.
    #[error("bad frame for `{name}` (tag `{tag}`) from {peer}: {reason}")]
    Frame {
        /// Message name.
        name: String,
        /// Message tag.
        tag: String,
        /// The sending party.
        peer: Party,
        /// What is wrong with the frame.
        reason: WireError,
    },

    /// An object to send is larger than `max_object_size`.
    #[error(
        "object `{name}` (tag `{tag}`) encodes to {size} bytes, over the limit of {limit} bytes \
         (max_object_size)"
    )]
    TooLarge {
        /// Message name.
        name: String,
        /// Message tag.
        tag: String,
        /// Encoded size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },

    /// The backend failed to move a frame to or from `peer`.
    #[error("transport error with {peer}: {reason}")]
    Transport {
        /// The other party.
        peer: Party,
        /// The backend's description of the failure.
        reason: String,
    },

    /// The value could not be encoded.
    #[error("cannot encode `{name}` (tag `{tag}`): {reason}")]
    Encode {
        /// Message name.
        name: String,
        /// Message tag.
        tag: String,
        /// The encoder's message.
        reason: String,
    },

    /// A well-framed payload from `peer` is not a valid encoding of the expected type.
    #[error("cannot decode `{name}` (tag `{tag}`) from {peer}: {reason}")]
    Decode {
        /// Message name.
        name: String,
        /// Message tag.
        tag: String,
        /// The sending party.
        peer: Party,
        /// The decoder's message.
        reason: String,
    },

    /// A message name the federation cannot use.
    #[error("invalid message name `{name}`: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
}

impl FederationError {
    /// The error a transport returns when `deadline` passes while waiting for `key`.
    pub fn timeout(key: &MessageKey, waited: Duration) -> Self {
        FederationError::Timeout {
            key: Box::new(key.clone()),
            waited,
        }
    }

    /// The error a transport returns when the cancel token is set while waiting for `key`.
    pub fn canceled(key: &MessageKey) -> Self {
        FederationError::Canceled {
            key: Box::new(key.clone()),
        }
    }

    /// A backend failure talking to `peer`.
    pub fn transport(peer: &Party, reason: impl Into<String>) -> Self {
        FederationError::Transport {
            peer: peer.clone(),
            reason: reason.into(),
        }
    }
}
