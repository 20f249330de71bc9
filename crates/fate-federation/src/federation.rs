//! [`Federation`]: one party's view of one federation session (fate-spec §2.1).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_types::Party;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{self, Head, WireError};
use crate::{
    CancelToken, Direction, FederationConfig, FederationError, MessageKey, Observer, Transport,
};

/// A (direction, name, tag, peer) already used in this session.
type UsedKey = (Direction, String, String, Party);

/// What a component uses to exchange objects with other parties: one party's view of one
/// federation session. Clones share the transport, the cancel token and the once-per-key
/// bookkeeping.
#[derive(Clone)]
pub struct Federation {
    transport: Arc<dyn Transport>,
    session_id: String,
    local: Party,
    config: FederationConfig,
    cancel: CancelToken,
    used: Arc<Mutex<HashSet<UsedKey>>>,
    observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for Federation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Federation")
            .field("transport", &self.transport.name())
            .field("session_id", &self.session_id)
            .field("local", &self.local)
            .field("config", &self.config)
            .field("canceled", &self.cancel.is_canceled())
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// A view of session `session_id` for party `local`, moving frames through `transport`.
    /// Waits end early when `cancel` is set.
    pub fn new(
        transport: Arc<dyn Transport>,
        session_id: impl Into<String>,
        local: Party,
        config: FederationConfig,
        cancel: CancelToken,
    ) -> Self {
        Federation {
            transport,
            session_id: session_id.into(),
            local,
            config,
            cancel,
            used: Arc::default(),
            observer: None,
        }
    }

    /// Reports every frame this handle (and its later clones) sends or receives to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The party this view belongs to.
    pub fn local(&self) -> &Party {
        &self.local
    }

    /// The federation session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Limits and timeout in force.
    pub fn config(&self) -> &FederationConfig {
        &self.config
    }

    /// The token that cancels this session's waits.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The backend's name.
    pub fn transport_name(&self) -> &'static str {
        self.transport.name()
    }

    /// Drops the session's frames still pending in the transport (job cleanup).
    pub fn cleanup(&self) {
        self.transport.cleanup(&self.session_id);
    }

    /// Sends `value` to each of `dst`. Each (name, tag, peer) may be sent once per session: a
    /// second send is [`FederationError::DuplicateKey`] (fate-spec §2.1), checked for all of
    /// `dst` before anything is sent. Objects over `max_message_size` go as slices (§2.2).
    pub fn remote<T: Serialize + ?Sized>(
        &self,
        name: &str,
        tag: &str,
        dst: &[Party],
        value: &T,
    ) -> Result<(), FederationError> {
        let payload = wire::encode_value(value).map_err(|reason| FederationError::Encode {
            name: name.to_string(),
            tag: tag.to_string(),
            reason,
        })?;
        self.remote_payload(name, tag, dst, payload)
    }

    /// Receives one value from each of `src`, in the order of `src`. Each (name, tag, peer) may
    /// be received once per session. One deadline, `config.timeout` from now, covers the
    /// whole call.
    pub fn get<T: DeserializeOwned>(
        &self,
        name: &str,
        tag: &str,
        src: &[Party],
    ) -> Result<Vec<T>, FederationError> {
        let deadline = self.claim_recv(name, tag, src)?;
        let mut values = Vec::with_capacity(src.len());
        for peer in src {
            let payload = self.get_payload(name, tag, peer, deadline)?;
            values.push(self.decode(name, tag, peer, &payload)?);
        }
        Ok(values)
    }

    /// Receives one value from `src`; see [`Federation::get`].
    pub fn get_one<T: DeserializeOwned>(
        &self,
        name: &str,
        tag: &str,
        src: &Party,
    ) -> Result<T, FederationError> {
        let deadline = self.claim_recv(name, tag, std::slice::from_ref(src))?;
        let payload = self.get_payload(name, tag, src, deadline)?;
        self.decode(name, tag, src, &payload)
    }

    fn remote_payload(
        &self,
        name: &str,
        tag: &str,
        dst: &[Party],
        payload: Vec<u8>,
    ) -> Result<(), FederationError> {
        check_name(name)?;
        if payload.len() > self.config.max_object_size {
            return Err(FederationError::TooLarge {
                name: name.to_string(),
                tag: tag.to_string(),
                size: payload.len() as u64,
                limit: self.config.max_object_size as u64,
            });
        }
        let frames = wire::encode_frames(&payload, self.config.max_message_size).map_err(|e| {
            FederationError::Encode {
                name: name.to_string(),
                tag: tag.to_string(),
                reason: e.to_string(),
            }
        })?;
        let size = payload.len();
        drop(payload);
        self.claim(Direction::Send, name, tag, dst)?;
        for (i, peer) in dst.iter().enumerate() {
            let key = self.key(name, tag, &self.local, peer);
            // The last destination takes the frames; the others get copies.
            if i + 1 == dst.len() {
                self.send_frames(&key, frames)?;
                break;
            }
            self.send_frames(&key, frames.clone())?;
        }
        tracing::debug!(
            session = %self.session_id,
            name,
            tag,
            n_dst = dst.len(),
            bytes = size,
            "Sent object."
        );
        Ok(())
    }

    fn send_frames(&self, key: &MessageKey, frames: Vec<Vec<u8>>) -> Result<(), FederationError> {
        for (i, frame) in frames.into_iter().enumerate() {
            let frame_key = if i == 0 {
                key.clone()
            } else {
                MessageKey {
                    name: wire::slice_name(&key.name, (i - 1) as u32),
                    ..key.clone()
                }
            };
            if let Some(observer) = &self.observer {
                observer.on_send(&frame_key, &frame);
            }
            self.transport
                .send_cancellable(&frame_key, frame, &self.cancel)?;
        }
        Ok(())
    }

    /// Checks the once-per-key rule for a receive and returns the call's deadline.
    fn claim_recv(&self, name: &str, tag: &str, src: &[Party]) -> Result<Instant, FederationError> {
        check_name(name)?;
        self.claim(Direction::Recv, name, tag, src)?;
        Ok(deadline_after(self.config.timeout))
    }

    /// Marks (direction, name, tag, peer) used for every peer, or none if any was used before
    /// (or appears twice in `peers`).
    fn claim(
        &self,
        direction: Direction,
        name: &str,
        tag: &str,
        peers: &[Party],
    ) -> Result<(), FederationError> {
        let mut used = self.used.lock();
        let mut fresh: Vec<UsedKey> = Vec::with_capacity(peers.len());
        for peer in peers {
            let entry = (direction, name.to_string(), tag.to_string(), peer.clone());
            if used.contains(&entry) || fresh.contains(&entry) {
                return Err(FederationError::DuplicateKey {
                    direction,
                    name: name.to_string(),
                    tag: tag.to_string(),
                    peer: peer.clone(),
                });
            }
            fresh.push(entry);
        }
        used.extend(fresh);
        Ok(())
    }

    fn get_payload(
        &self,
        name: &str,
        tag: &str,
        peer: &Party,
        deadline: Instant,
    ) -> Result<Vec<u8>, FederationError> {
        let key = self.key(name, tag, peer, &self.local);
        let frame_error = |reason: WireError| {
            tracing::warn!(
                session = %self.session_id,
                name,
                tag,
                peer = %peer,
                error = %reason,
                "Refused a frame."
            );
            FederationError::Frame {
                name: name.to_string(),
                tag: tag.to_string(),
                peer: peer.clone(),
                reason,
            }
        };
        let mut head = self.recv_frame(&key, deadline)?;
        let payload = match wire::decode_head(&head, self.config.max_object_size) {
            Ok(Head::Inline(payload)) => {
                let start = head.len() - payload.len();
                head.drain(..start);
                head
            }
            Ok(Head::Split(mut reassembler)) => {
                while let Some(index) = reassembler.next_slice() {
                    let slice_key = MessageKey {
                        name: wire::slice_name(name, index),
                        ..key.clone()
                    };
                    let frame = self.recv_frame(&slice_key, deadline)?;
                    reassembler.push(&frame).map_err(frame_error)?;
                }
                reassembler.finish().map_err(frame_error)?
            }
            Err(reason) => return Err(frame_error(reason)),
        };
        tracing::debug!(
            session = %self.session_id,
            name,
            tag,
            peer = %peer,
            bytes = payload.len(),
            "Received object."
        );
        Ok(payload)
    }

    fn recv_frame(&self, key: &MessageKey, deadline: Instant) -> Result<Vec<u8>, FederationError> {
        if self.cancel.is_canceled() {
            return Err(FederationError::canceled(key));
        }
        let frame = self.transport.recv(key, deadline, &self.cancel)?;
        if let Some(observer) = &self.observer {
            observer.on_recv(key, &frame);
        }
        Ok(frame)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        name: &str,
        tag: &str,
        peer: &Party,
        payload: &[u8],
    ) -> Result<T, FederationError> {
        wire::decode_value(payload).map_err(|reason| FederationError::Decode {
            name: name.to_string(),
            tag: tag.to_string(),
            peer: peer.clone(),
            reason,
        })
    }

    fn key(&self, name: &str, tag: &str, src: &Party, dst: &Party) -> MessageKey {
        MessageKey {
            session_id: self.session_id.clone(),
            name: name.to_string(),
            tag: tag.to_string(),
            src: src.clone(),
            dst: dst.clone(),
        }
    }
}

/// `now + timeout`, saturating far in the future instead of overflowing.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Names must be non-empty and must not contain the slice marker, so a user name can never
/// collide with a derived slice key.
fn check_name(name: &str) -> Result<(), FederationError> {
    if name.is_empty() {
        return Err(FederationError::InvalidName {
            name: name.to_string(),
            reason: "the name is empty",
        });
    }
    if name.contains(wire::SPLIT_MARKER) {
        return Err(FederationError::InvalidName {
            name: name.to_string(),
            reason: "names containing `__split__` are reserved for slices of large objects",
        });
    }
    Ok(())
}
