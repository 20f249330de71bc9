//! The in-process backend: one hub shared by every party hosted in one process (standalone
//! mode, tests). Every party's [`Federation`](crate::Federation) holds the same
//! `Arc<LocalTransport>`.
//!
//! The hub is a [`Mailbox`] without a total byte budget: receivers wait there with their
//! deadline and wake at least every [`CANCEL_POLL`] to check their cancel token. Memory is
//! bounded: the hub refuses any frame over its configured limit and the mailbox applies
//! [`MailboxLimits`] (bytes per session and per sending party, expiry of frames nobody asks
//! for, see [`crate::bounds`]). Expired frames are dropped on the next `send` or `recv` (at most
//! every [`MailboxLimits::sweep_interval`]) or by [`LocalTransport::expire`]. A frame for a key
//! that is pending or was delivered in the session is refused (network backends ignore it as
//! a retry; here it can only be the sender's mistake).

use std::sync::Arc;

use crate::mailbox::Mailbox;
use crate::{
    CancelToken, DEFAULT_MAX_MESSAGE_SIZE, FederationError, MailboxLimits, MessageKey, Transport,
    wire,
};

pub use crate::mailbox::CANCEL_POLL;

/// The hub's default frame limit: a frame of the default `max_message_size` plus its header.
pub const DEFAULT_MAX_FRAME_SIZE: usize = wire::max_frame_len(DEFAULT_MAX_MESSAGE_SIZE);

/// In-process hub moving frames between parties of one process.
#[derive(Debug)]
pub struct LocalTransport {
    mailbox: Arc<Mailbox>,
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
        Self::with_limits(max_frame_size, MailboxLimits::default())
    }

    /// A hub accepting frames up to `max_frame_size` bytes and buffering within `limits`.
    pub fn with_limits(max_frame_size: usize, limits: MailboxLimits) -> Arc<Self> {
        Arc::new(LocalTransport {
            mailbox: Mailbox::with_limits(usize::MAX, limits),
            max_frame_size,
        })
    }

    /// The hub's buffering bounds.
    pub fn limits(&self) -> &MailboxLimits {
        self.mailbox.limits()
    }

    /// Drops the frames nobody asked for within [`MailboxLimits::unclaimed_ttl`]; returns how
    /// many were dropped.
    pub fn expire(&self) -> usize {
        self.mailbox.expire()
    }

    /// The largest frame this hub accepts.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Number of frames sent but not yet received.
    pub fn pending_frames(&self) -> usize {
        self.mailbox.pending_frames()
    }

    /// Total bytes of the frames sent but not yet received.
    pub fn pending_bytes(&self) -> usize {
        self.mailbox.pending_bytes()
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
        match self.mailbox.put(key, frame) {
            Ok(true) => Ok(()),
            // Parties of one process share the hub, so a second frame for a key is the
            // sender's mistake, not a retry: say so instead of dropping it.
            Ok(false) => Err(FederationError::transport(
                &key.dst,
                format!(
                    "a frame for {key} is already pending or was delivered in this session: \
                     each key carries one frame"
                ),
            )),
            Err(refusal) => Err(FederationError::transport(
                &key.dst,
                format!("local hub refused {key}: {refusal}"),
            )),
        }
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: std::time::Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        self.mailbox.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        "local"
    }

    fn cleanup(&self, session_id: &str) {
        let before = self.mailbox.pending_frames();
        self.mailbox.cleanup(session_id);
        let dropped = before.saturating_sub(self.mailbox.pending_frames());
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
    use std::time::{Duration, Instant};

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
