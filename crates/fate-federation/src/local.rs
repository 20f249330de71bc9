//! The in-process backend: one hub shared by every party hosted in one process (standalone
//! mode, tests). Every party's [`Federation`](crate::Federation) holds the same
//! `Arc<LocalTransport>`.
//!
//! The hub is a map from [`MessageKey`] to the pending frame plus a condition variable.
//! Receivers wait with their deadline and wake at least every [`CANCEL_POLL`] to check their
//! cancel token. Memory is bounded: the hub refuses any frame over its configured limit and
//! applies [`MailboxLimits`] (bytes per session and per sending party, expiry of frames nobody
//! asks for, see [`crate::bounds`]). Expired frames are dropped on the next `send` or `recv`
//! (at most every [`MailboxLimits::sweep_interval`]) or by [`LocalTransport::expire`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::bounds::{MailboxLimits, Pending, Usage};
use crate::{CancelToken, DEFAULT_MAX_MESSAGE_SIZE, FederationError, MessageKey, Transport, wire};

/// How often a waiting receiver checks its cancel token.
pub const CANCEL_POLL: Duration = Duration::from_millis(50);

/// The hub's default frame limit: a frame of the default `max_message_size` plus its header.
pub const DEFAULT_MAX_FRAME_SIZE: usize = wire::max_frame_len(DEFAULT_MAX_MESSAGE_SIZE);

/// In-process hub moving frames between parties of one process.
#[derive(Debug)]
pub struct LocalTransport {
    state: Mutex<State>,
    arrived: Condvar,
    max_frame_size: usize,
    limits: MailboxLimits,
}

#[derive(Debug)]
struct State {
    pending: HashMap<MessageKey, Pending>,
    usage: Usage,
    next_sweep: Instant,
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
        Self::with_limits(max_frame_size, MailboxLimits::default())
    }

    /// A hub accepting frames up to `max_frame_size` bytes and buffering within `limits`.
    pub fn with_limits(max_frame_size: usize, limits: MailboxLimits) -> Arc<Self> {
        Arc::new(LocalTransport {
            state: Mutex::new(State {
                pending: HashMap::new(),
                usage: Usage::default(),
                next_sweep: Instant::now() + limits.sweep_interval(),
            }),
            arrived: Condvar::new(),
            max_frame_size,
            limits,
        })
    }

    /// The hub's buffering bounds.
    pub fn limits(&self) -> &MailboxLimits {
        &self.limits
    }

    /// Drops the frames nobody asked for within [`MailboxLimits::unclaimed_ttl`]; returns how
    /// many were dropped.
    pub fn expire(&self) -> usize {
        let mut state = self.state.lock();
        self.sweep(&mut state, Instant::now())
    }

    fn sweep(&self, state: &mut State, now: Instant) -> usize {
        let ttl = self.limits.unclaimed_ttl;
        state.next_sweep = now + self.limits.sweep_interval();
        let State { pending, usage, .. } = state;
        usage.expire(pending, now, ttl).0
    }

    fn sweep_if_due(&self, state: &mut State) {
        let now = Instant::now();
        if now >= state.next_sweep {
            self.sweep(state, now);
        }
    }

    /// The largest frame this hub accepts.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Number of frames sent but not yet received.
    pub fn pending_frames(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// Total bytes of the frames sent but not yet received.
    pub fn pending_bytes(&self) -> usize {
        self.state
            .lock()
            .pending
            .values()
            .map(|p| p.frame.len())
            .sum()
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
        let mut state = self.state.lock();
        self.sweep_if_due(&mut state);
        if state.pending.contains_key(key) {
            return Err(FederationError::transport(
                &key.dst,
                format!("a frame for {key} is already pending: each key carries one frame"),
            ));
        }
        if let Err(over) = state.usage.check(key, frame.len(), &self.limits) {
            return Err(FederationError::transport(
                &key.dst,
                format!("local hub refused {key}: {over}"),
            ));
        }
        state.usage.add(key, frame.len());
        let arrived = Instant::now();
        state
            .pending
            .insert(key.clone(), Pending { frame, arrived });
        drop(state);
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
        let mut state = self.state.lock();
        self.sweep_if_due(&mut state);
        state.usage.begin_recv(&key.session_id, start);
        let result = loop {
            if let Some(p) = state.pending.remove(key) {
                state.usage.remove(key, p.frame.len());
                break Ok(p.frame);
            }
            if cancel.is_canceled() {
                break Err(FederationError::canceled(key));
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(FederationError::timeout(key, now - start));
            }
            let wake = deadline.min(now + CANCEL_POLL);
            self.arrived.wait_until(&mut state, wake);
        };
        state.usage.end_recv(&key.session_id, Instant::now());
        result
    }

    fn name(&self) -> &'static str {
        "local"
    }

    fn cleanup(&self, session_id: &str) {
        let mut state = self.state.lock();
        let State { pending, usage, .. } = &mut *state;
        let before = pending.len();
        pending.retain(|key, p| {
            let keep = key.session_id != session_id;
            if !keep {
                usage.remove(key, p.frame.len());
            }
            keep
        });
        usage.forget_session(session_id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use fate_types::{Party, Role};

    fn key(session: &str, name: &str, src: &str) -> MessageKey {
        MessageKey {
            session_id: session.into(),
            name: name.into(),
            tag: "t".into(),
            src: Party::new(Role::Guest, src),
            dst: Party::new(Role::Host, "10000"),
        }
    }

    fn hub(session_bytes: usize, peer_bytes: usize, ttl: Duration) -> Arc<LocalTransport> {
        LocalTransport::with_limits(
            1024,
            MailboxLimits {
                session_bytes,
                peer_bytes,
                unclaimed_ttl: ttl,
            },
        )
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn pushes_over_the_session_or_party_bound_are_refused_and_not_kept() {
        let hub = hub(300, 500, Duration::from_secs(600));
        hub.send(&key("s1", "a", "9999"), vec![1; 200]).unwrap();
        let err = hub
            .send(&key("s1", "b", "9999"), vec![2; 101])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("session `s1`") && err.contains("party 9999") && err.contains("300"),
            "{err}"
        );
        assert_eq!((hub.pending_frames(), hub.pending_bytes()), (1, 200));
        // Another session of the same party fits its session bound but not the party's.
        hub.send(&key("s2", "a", "9999"), vec![3; 250]).unwrap();
        let err = hub
            .send(&key("s3", "a", "9999"), vec![4; 51])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("party 9999") && err.contains("per-party limit of 500"),
            "{err}"
        );
        // Another party is not charged for 9999's frames.
        hub.send(&key("s3", "a", "9998"), vec![5; 51]).unwrap();
        assert_eq!(hub.pending_bytes(), 200 + 250 + 51);
        // Receiving frees the bound: the refused push now fits.
        let got = hub
            .recv(&key("s1", "a", "9999"), soon(), &CancelToken::new())
            .unwrap();
        assert_eq!(got, vec![1; 200]);
        hub.send(&key("s1", "b", "9999"), vec![2; 101]).unwrap();
    }

    #[test]
    fn frames_of_a_session_nobody_opens_expire() {
        let ttl = Duration::from_millis(100);
        let hub = hub(1 << 20, 1 << 20, ttl);
        hub.send(&key("junk", "a", "9999"), vec![0; 1000]).unwrap();
        hub.send(&key("junk", "b", "9999"), vec![0; 1000]).unwrap();
        // A session whose receiver is waiting keeps its early frames.
        hub.send(&key("live", "later", "9999"), vec![7; 10])
            .unwrap();
        let waiter = {
            let hub = hub.clone();
            std::thread::spawn(move || {
                hub.recv(&key("live", "first", "9999"), soon(), &CancelToken::new())
            })
        };
        std::thread::sleep(ttl * 3);
        assert_eq!(hub.expire(), 2, "the two unclaimed frames expire");
        assert_eq!(hub.pending_bytes(), 10);
        hub.send(&key("live", "first", "9999"), vec![8; 10])
            .unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), vec![8; 10]);
        let got = hub
            .recv(&key("live", "later", "9999"), soon(), &CancelToken::new())
            .unwrap();
        assert_eq!(got, vec![7; 10]);
        // Expiry also happens on the next send, without an explicit sweep.
        hub.send(&key("junk2", "a", "9999"), vec![0; 100]).unwrap();
        std::thread::sleep(ttl * 3);
        hub.send(&key("other", "a", "9999"), vec![0; 1]).unwrap();
        assert_eq!((hub.pending_frames(), hub.pending_bytes()), (1, 1));
    }

    #[test]
    fn traffic_within_the_bounds_is_delivered() {
        let hub = hub(4096, 8192, Duration::from_millis(200));
        for session in ["s1", "s2"] {
            for i in 0..4 {
                hub.send(&key(session, &format!("m{i}"), "9999"), vec![i; 1000])
                    .unwrap();
            }
        }
        for session in ["s1", "s2"] {
            for i in 0..4 {
                let got = hub
                    .recv(
                        &key(session, &format!("m{i}"), "9999"),
                        soon(),
                        &CancelToken::new(),
                    )
                    .unwrap();
                assert_eq!(got, vec![i; 1000]);
            }
        }
        assert_eq!(hub.pending_bytes(), 0);
    }

    #[test]
    fn cleanup_job_frees_every_session_of_the_job_and_only_those() {
        // Issue #10: the scheduler called `cleanup(job_id)`, which matches no session.
        let hub = LocalTransport::new();
        let sessions = ["a_reader_0", "a_psi_0", "a_psi_1", "a_b_psi_0", "c_psi_0"];
        for session in sessions {
            hub.send(&key(session, "x", "9999"), vec![1; 10]).unwrap();
        }
        hub.cleanup("a");
        assert_eq!(hub.pending_frames(), 5, "a job id names no session");
        crate::cleanup_job(hub.as_ref(), "a", [("reader", 0), ("psi", 1)]);
        // Job `a_b`'s session `a_b_psi_0` starts with `a_` but belongs to another job.
        assert_eq!(hub.pending_frames(), 2);
        for session in ["a_b_psi_0", "c_psi_0"] {
            hub.recv(&key(session, "x", "9999"), soon(), &CancelToken::new())
                .unwrap();
        }
    }
}
