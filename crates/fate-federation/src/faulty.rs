//! A fault-injecting [`Transport`] wrapper for tests of what happens above the federation when
//! the network misbehaves (TiKV's `transport_simulate` filters): frames for a chosen party are
//! dropped, delayed or refused, everything else passes through to the wrapped backend.
//!
//! Faults are keyed by the destination's party id (one node per party), so every role a
//! party plays is affected alike. A delayed frame is handed to the wrapped transport by a
//! thread of its own once the delay has passed; `send` never blocks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::{CancelToken, FederationError, MessageKey, Transport};
use fate_types::Party;

/// What happens to a frame sent to a faulty party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The frame is accepted and lost (a partition that the sender does not notice).
    Drop,
    /// The frame arrives this much later than it was sent.
    Delay(Duration),
    /// `send` fails with a transport error carrying this text.
    Fail(String),
}

/// Wraps a transport and applies the [`Fault`] set for a frame's destination party.
pub struct FaultyTransport {
    inner: Arc<dyn Transport>,
    faults: Mutex<HashMap<String, Fault>>,
    dropped: AtomicUsize,
    delayed: AtomicUsize,
    failed: AtomicUsize,
    cleaned: Mutex<Vec<String>>,
}

impl std::fmt::Debug for FaultyTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyTransport")
            .field("inner", &self.inner.name())
            .field("faults", &*self.faults.lock())
            .finish_non_exhaustive()
    }
}

impl FaultyTransport {
    /// A wrapper with no faults set: every frame goes straight to `inner`.
    pub fn new(inner: Arc<dyn Transport>) -> Arc<Self> {
        Arc::new(FaultyTransport {
            inner,
            faults: Mutex::new(HashMap::new()),
            dropped: AtomicUsize::new(0),
            delayed: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            cleaned: Mutex::new(Vec::new()),
        })
    }

    /// Applies `fault` to every frame sent to `party_id` from now on.
    pub fn set(&self, party_id: &str, fault: Fault) {
        self.faults.lock().insert(party_id.to_string(), fault);
    }

    /// Frames to `party_id` pass through again (the partition heals).
    pub fn clear(&self, party_id: &str) {
        self.faults.lock().remove(party_id);
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Frames delayed so far.
    pub fn delayed(&self) -> usize {
        self.delayed.load(Ordering::SeqCst)
    }

    /// Sends refused so far.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// The sessions cleaned up so far, in order.
    pub fn cleaned(&self) -> Vec<String> {
        self.cleaned.lock().clone()
    }
}

impl Transport for FaultyTransport {
    fn send(&self, key: &MessageKey, frame: Vec<u8>) -> Result<(), FederationError> {
        self.send_cancellable(key, frame, &CancelToken::new())
    }

    fn send_cancellable(
        &self,
        key: &MessageKey,
        frame: Vec<u8>,
        cancel: &CancelToken,
    ) -> Result<(), FederationError> {
        let fault = self.faults.lock().get(key.dst.party_id.as_str()).cloned();
        match fault {
            None => self.inner.send_cancellable(key, frame, cancel),
            Some(Fault::Drop) => {
                self.dropped.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(%key, "Fault injected: frame dropped.");
                Ok(())
            }
            Some(Fault::Fail(reason)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                Err(FederationError::transport(&key.dst, reason))
            }
            Some(Fault::Delay(delay)) => {
                self.delayed.fetch_add(1, Ordering::SeqCst);
                let dst = key.dst.clone();
                let (inner, key) = (self.inner.clone(), key.clone());
                std::thread::Builder::new()
                    .name("fate-faulty-delay".into())
                    .spawn(move || {
                        std::thread::sleep(delay);
                        if let Err(e) = inner.send(&key, frame) {
                            tracing::warn!(%key, error = %e, "Delayed frame could not be sent.");
                        }
                    })
                    .map(|_| ())
                    .map_err(|e| FederationError::transport(&dst, format!("delay thread: {e}")))
            }
        }
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        self.inner.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn configure_session(&self, session_id: &str, party: &Party, run: &fate_types::BrokerRun) {
        self.inner.configure_session(session_id, party, run);
    }

    fn cleanup(&self, session_id: &str) {
        self.cleaned.lock().push(session_id.to_string());
        self.inner.cleanup(session_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalTransport;
    use fate_types::{Party, Role};

    fn key(dst: &str) -> MessageKey {
        MessageKey {
            session_id: "s".into(),
            name: "x".into(),
            tag: "t".into(),
            src: Party::new(Role::Guest, "9999"),
            dst: Party::new(Role::Host, dst),
        }
    }

    #[test]
    fn faults_apply_to_their_party_only() {
        let t = FaultyTransport::new(LocalTransport::new());
        let cancel = CancelToken::new();
        let soon = || Instant::now() + Duration::from_millis(200);
        t.set("10000", Fault::Drop);
        t.send(&key("10000"), vec![1]).unwrap();
        assert!(t.recv(&key("10000"), soon(), &cancel).is_err(), "dropped");
        t.send(&key("10001"), vec![2]).unwrap();
        assert_eq!(t.recv(&key("10001"), soon(), &cancel).unwrap(), vec![2]);
        t.set("10000", Fault::Fail("link down".into()));
        let err = t.send(&key("10000"), vec![3]).unwrap_err();
        assert!(err.to_string().contains("link down"), "{err}");
        t.set("10000", Fault::Delay(Duration::from_millis(100)));
        let sent = Instant::now();
        t.send(&key("10000"), vec![4]).unwrap();
        let got = t
            .recv(&key("10000"), sent + Duration::from_secs(5), &cancel)
            .unwrap();
        assert_eq!(got, vec![4]);
        assert!(sent.elapsed() >= Duration::from_millis(100));
        t.clear("10000");
        let mut k = key("10000");
        k.name = "y".into();
        t.send(&k, vec![5]).unwrap();
        assert_eq!(t.recv(&k, soon(), &cancel).unwrap(), vec![5]);
        assert_eq!((t.dropped(), t.failed(), t.delayed()), (1, 1, 1));
    }
}
