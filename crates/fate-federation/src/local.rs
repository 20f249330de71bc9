//! The in-process backend: one hub shared by every party hosted in one process (standalone
//! mode, tests). Every party's [`Federation`](crate::Federation) holds the same
//! `Arc<LocalTransport>`.
//!
//! The hub is a map from [`MessageKey`] to the pending frame plus a condition variable.
//! Receivers wait with their deadline and wake at least every [`CANCEL_POLL`] to check their
//! cancel token. Memory stays bounded by the senders' slicing: the hub refuses any frame over
//! its configured limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::{CancelToken, DEFAULT_MAX_MESSAGE_SIZE, FederationError, MessageKey, Transport, wire};

/// How often a waiting receiver checks its cancel token.
pub const CANCEL_POLL: Duration = Duration::from_millis(50);

/// The hub's default frame limit: a frame of the default `max_message_size` plus its header.
pub const DEFAULT_MAX_FRAME_SIZE: usize = wire::max_frame_len(DEFAULT_MAX_MESSAGE_SIZE);

/// In-process hub moving frames between parties of one process.
#[derive(Debug)]
pub struct LocalTransport {
    pending: Mutex<HashMap<MessageKey, Vec<u8>>>,
    arrived: Condvar,
    max_frame_size: usize,
}

impl LocalTransport {
    /// A hub accepting frames up to [`DEFAULT_MAX_FRAME_SIZE`], which fits federations using
    /// the default `max_message_size`.
    pub fn new() -> Arc<Self> {
        Self::with_max_frame_size(DEFAULT_MAX_FRAME_SIZE)
    }

    /// A hub accepting frames up to `max_frame_size` bytes; use
    /// [`wire::max_frame_len`]`(max_message_size)` for federations with a larger slice size.
    pub fn with_max_frame_size(max_frame_size: usize) -> Arc<Self> {
        Arc::new(LocalTransport {
            pending: Mutex::new(HashMap::new()),
            arrived: Condvar::new(),
            max_frame_size,
        })
    }

    /// The largest frame this hub accepts.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Number of frames sent but not yet received.
    pub fn pending_frames(&self) -> usize {
        self.pending.lock().len()
    }

    /// Total bytes of the frames sent but not yet received.
    pub fn pending_bytes(&self) -> usize {
        self.pending.lock().values().map(Vec::len).sum()
    }
}

impl Transport for LocalTransport {
    fn send(&self, key: &MessageKey, frame: Vec<u8>) -> Result<(), FederationError> {
        if frame.len() > self.max_frame_size {
            return Err(FederationError::transport(
                &key.dst,
                format!(
                    "frame of {} bytes for {key} exceeds the local hub's limit of {} bytes",
                    frame.len(),
                    self.max_frame_size
                ),
            ));
        }
        let mut pending = self.pending.lock();
        if pending.contains_key(key) {
            return Err(FederationError::transport(
                &key.dst,
                format!("a frame for {key} is already pending: each key carries one frame"),
            ));
        }
        pending.insert(key.clone(), frame);
        drop(pending);
        self.arrived.notify_all();
        Ok(())
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        let start = Instant::now();
        let mut pending = self.pending.lock();
        loop {
            if let Some(frame) = pending.remove(key) {
                return Ok(frame);
            }
            if cancel.is_canceled() {
                return Err(FederationError::canceled(key));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(FederationError::timeout(key, now - start));
            }
            let wake = deadline.min(now + CANCEL_POLL);
            self.arrived.wait_until(&mut pending, wake);
        }
    }

    fn name(&self) -> &'static str {
        "local"
    }

    fn cleanup(&self, session_id: &str) {
        let mut pending = self.pending.lock();
        let before = pending.len();
        pending.retain(|key, _| key.session_id != session_id);
        let dropped = before - pending.len();
        if dropped > 0 {
            tracing::debug!(
                session = session_id,
                n_frames = dropped,
                "Dropped pending frames."
            );
        }
    }
}
