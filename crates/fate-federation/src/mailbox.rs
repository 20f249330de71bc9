//! Where frames wait for their `recv`: a map from [`MessageKey`] to frame with a byte budget,
//! and a memory of delivered keys so that a frame pushed again (a retry whose acknowledgement
//! was lost, a message queue redelivering) is ignored. Every backend keeps its received frames
//! in one [`Mailbox`] (the in-process [`LocalTransport`](crate::LocalTransport), the gRPC
//! transport, the RabbitMQ transport), so there is one wait loop (deadline, cancel token polled
//! every [`CANCEL_POLL`]) and one set of bounds for all of them.
//!
//! The budget never refuses the frame a `recv` is waiting for. Senders push the slices of an
//! object several at a time, so slices can arrive out of order (a retry after a router restart
//! reorders them at will); if later slices could fill the budget while the receiver waits for
//! an earlier one, the earlier one would be refused until its sender gave up, and nothing
//! would ever be read again. Admitting a waited-for frame over the budget costs at most one
//! frame per waiting `recv`, and that frame leaves at once.
//!
//! Besides the budget of the whole mailbox, [`MailboxLimits`] bound the bytes of one session
//! and of one sending party, and drop the frames nobody asks for after
//! [`MailboxLimits::unclaimed_ttl`] (issue #10: ten junk frames for sessions nobody opened
//! used to pin 175 MB for good; see [`crate::bounds`]). A backend with a server sweeps
//! expired frames every [`MailboxLimits::sweep_interval`] with [`Mailbox::expire`]; pushes and
//! `recv`s sweep too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::fmt;

use parking_lot::{Condvar, Mutex};

use crate::bounds::{MailboxLimits, OverLimit, Pending, Usage};
use crate::{CancelToken, FederationError, MessageKey};

/// How often a waiting `recv` checks its cancel token.
pub const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Why a frame was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over the byte budget.
    Full {
        /// Bytes pending and reserved.
        pending: usize,
        /// Bytes of the refused frame.
        incoming: usize,
        /// The budget.
        budget: usize,
    },
    /// Another push of the same key is still streaming.
    InFlight,
    /// Over the bytes of its session or of its sending party.
    Over(OverLimit),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full {
                pending,
                incoming,
                budget,
            } => write!(
                f,
                "the mailbox is full: {pending} bytes pending, {incoming} more would exceed its \
                 budget of {budget} bytes"
            ),
            Refusal::InFlight => f.write_str("another copy of the frame is still being received"),
            Refusal::Over(over) => over.fmt(f),
        }
    }
}

/// Outcome of [`Mailbox::reserve`].
#[derive(Debug)]
pub enum Admit {
    /// A new key: stream the frame in and [`Reservation::commit`] it.
    Fresh(Reservation),
    /// The key is pending or was delivered already: ignore this copy.
    Duplicate,
}

#[derive(Debug)]
struct State {
    pending: HashMap<MessageKey, Pending>,
    in_flight: HashSet<MessageKey>,
    /// Keys a `recv` is waiting for, with the number of waiters.
    waited: HashMap<MessageKey, usize>,
    /// Keys already handed to `recv`, per session, until the session's cleanup.
    delivered: HashMap<String, HashSet<MessageKey>>,
    pending_bytes: usize,
    reserved_bytes: usize,
    arrivals: u64,
    /// Bytes (pending and reserved) per session and per sending party.
    usage: Usage,
    next_sweep: Instant,
}

/// Frames waiting for their receiver. Memory is bounded: the bytes of pending frames plus the
/// bytes reserved by frames being streamed in stay within the budget, plus at most one frame
/// per waiting `recv` (the frame it waits for is never refused).
#[derive(Debug)]
pub struct Mailbox {
    state: Mutex<State>,
    arrived: Condvar,
    budget: usize,
    limits: MailboxLimits,
}

impl Mailbox {
    /// An empty mailbox holding at most `budget` bytes of frames, with the default
    /// [`MailboxLimits`].
    pub fn new(budget: usize) -> Arc<Self> {
        Self::with_limits(budget, MailboxLimits::default())
    }

    /// An empty mailbox holding at most `budget` bytes of frames within `limits`.
    pub fn with_limits(budget: usize, limits: MailboxLimits) -> Arc<Self> {
        Arc::new(Mailbox {
            state: Mutex::new(State {
                pending: HashMap::new(),
                in_flight: HashSet::new(),
                waited: HashMap::new(),
                delivered: HashMap::new(),
                pending_bytes: 0,
                reserved_bytes: 0,
                arrivals: 0,
                usage: Usage::default(),
                next_sweep: Instant::now() + limits.sweep_interval(),
            }),
            arrived: Condvar::new(),
            budget,
            limits,
        })
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The per-session and per-party bounds and the expiry.
    pub fn limits(&self) -> &MailboxLimits {
        &self.limits
    }

    /// Bytes of the frames pending or being received for `session_id`.
    pub fn session_bytes(&self, session_id: &str) -> usize {
        self.state.lock().usage.session_bytes(session_id)
    }

    /// Drops the pending frames nobody asked for within [`MailboxLimits::unclaimed_ttl`];
    /// returns how many were dropped. Frames still being received are not touched.
    pub fn expire(&self) -> usize {
        let mut state = self.state.lock();
        self.sweep(&mut state, Instant::now())
    }

    fn sweep(&self, state: &mut State, now: Instant) -> usize {
        let ttl = self.limits.unclaimed_ttl;
        state.next_sweep = now + self.limits.sweep_interval();
        let State {
            pending,
            usage,
            pending_bytes,
            ..
        } = state;
        let (frames, bytes) = usage.expire(pending, now, ttl);
        *pending_bytes -= bytes;
        frames
    }

    fn sweep_if_due(&self, state: &mut State) {
        let now = Instant::now();
        if now >= state.next_sweep {
            self.sweep(state, now);
        }
    }

    /// Frames waiting for their `recv`.
    pub fn pending_frames(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// Bytes of the frames waiting, plus bytes reserved by frames being received.
    pub fn pending_bytes(&self) -> usize {
        let state = self.state.lock();
        state.pending_bytes + state.reserved_bytes
    }

    /// Number of frames that have arrived since the mailbox was made.
    pub fn arrivals(&self) -> u64 {
        self.state.lock().arrivals
    }

    /// Waits until at least `n` frames have arrived in total or `timeout` passes; returns the
    /// number arrived.
    pub fn wait_for_arrivals(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.arrivals < n {
            if self.arrived.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        state.arrivals
    }

    /// Claims room for a frame of `len` bytes under `key`; over the budget only if a `recv`
    /// is waiting for `key` (see the module documentation).
    pub fn reserve(self: &Arc<Self>, key: &MessageKey, len: usize) -> Result<Admit, Refusal> {
        let mut state = self.state.lock();
        self.sweep_if_due(&mut state);
        if state.pending.contains_key(key)
            || state
                .delivered
                .get(&key.session_id)
                .is_some_and(|keys| keys.contains(key))
        {
            return Ok(Admit::Duplicate);
        }
        if state.in_flight.contains(key) {
            return Err(Refusal::InFlight);
        }
        if !state.waited.contains_key(key) {
            let used = state.pending_bytes + state.reserved_bytes;
            if used.saturating_add(len) > self.budget {
                return Err(Refusal::Full {
                    pending: used,
                    incoming: len,
                    budget: self.budget,
                });
            }
            state
                .usage
                .check(key, len, &self.limits)
                .map_err(Refusal::Over)?;
        }
        state.usage.add(key, len);
        state.reserved_bytes += len;
        state.in_flight.insert(key.clone());
        Ok(Admit::Fresh(Reservation {
            mailbox: self.clone(),
            key: key.clone(),
            len,
            committed: false,
        }))
    }

    /// Puts a complete frame in at once (a party sending to a party of the same site, a frame
    /// consumed from a queue). Returns whether it was stored: `false` (and `frame` is
    /// dropped) if the key is pending or was delivered already.
    pub fn put(self: &Arc<Self>, key: &MessageKey, frame: Vec<u8>) -> Result<bool, Refusal> {
        match self.reserve(key, frame.len())? {
            Admit::Fresh(reservation) => {
                reservation.commit(frame);
                Ok(true)
            }
            Admit::Duplicate => Ok(false),
        }
    }

    /// Waits for the frame of `key` (see [`crate::Transport::recv`]).
    pub fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        let start = Instant::now();
        let mut state = self.state.lock();
        self.sweep_if_due(&mut state);
        *state.waited.entry(key.clone()).or_default() += 1;
        state.usage.begin_recv(&key.session_id, start);
        let result = self.wait_for(&mut state, key, start, deadline, cancel);
        state.usage.end_recv(&key.session_id, Instant::now());
        if let Some(waiters) = state.waited.get_mut(key) {
            *waiters -= 1;
            if *waiters == 0 {
                state.waited.remove(key);
            }
        }
        result
    }

    fn wait_for(
        &self,
        state: &mut parking_lot::MutexGuard<'_, State>,
        key: &MessageKey,
        start: Instant,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        loop {
            if let Some(Pending { frame, .. }) = state.pending.remove(key) {
                state.pending_bytes -= frame.len();
                state.usage.remove(key, frame.len());
                state
                    .delivered
                    .entry(key.session_id.clone())
                    .or_default()
                    .insert(key.clone());
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
            self.arrived.wait_until(state, wake);
        }
    }

    /// Drops the pending frames and the delivered-key memory of a session.
    pub fn cleanup(&self, session_id: &str) {
        let mut state = self.state.lock();
        let State {
            pending,
            usage,
            pending_bytes,
            delivered,
            ..
        } = &mut *state;
        pending.retain(|key, p| {
            let keep = key.session_id != session_id;
            if !keep {
                *pending_bytes -= p.frame.len();
                usage.remove(key, p.frame.len());
            }
            keep
        });
        delivered.remove(session_id);
        usage.forget_session(session_id);
    }
}

/// Room claimed for one frame being streamed in; released if dropped uncommitted.
#[derive(Debug)]
pub struct Reservation {
    mailbox: Arc<Mailbox>,
    key: MessageKey,
    len: usize,
    committed: bool,
}

impl Reservation {
    /// Stores the frame (at most the reserved length) and wakes receivers.
    pub fn commit(mut self, frame: Vec<u8>) {
        let mailbox = self.mailbox.clone();
        let mut state = mailbox.state.lock();
        state.reserved_bytes -= self.len;
        state.in_flight.remove(&self.key);
        state.usage.remove(&self.key, self.len);
        state.usage.add(&self.key, frame.len());
        state.pending_bytes += frame.len();
        state.arrivals += 1;
        let arrived = Instant::now();
        state
            .pending
            .insert(self.key.clone(), Pending { frame, arrived });
        self.committed = true;
        drop(state);
        mailbox.arrived.notify_all();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            let mut state = self.mailbox.state.lock();
            state.reserved_bytes -= self.len;
            state.in_flight.remove(&self.key);
            state.usage.remove(&self.key, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fate_types::{Party, Role};

    fn key(name: &str) -> MessageKey {
        MessageKey {
            session_id: "s".into(),
            name: name.into(),
            tag: "t".into(),
            src: Party::new(Role::Guest, "9999"),
            dst: Party::new(Role::Host, "10000"),
        }
    }

    #[test]
    fn budget_counts_reserved_and_pending_bytes() {
        let mb = Mailbox::new(100);
        let Ok(Admit::Fresh(r)) = mb.reserve(&key("a"), 60) else {
            panic!("first reservation refused")
        };
        assert_eq!(
            mb.reserve(&key("b"), 41).err(),
            Some(Refusal::Full {
                pending: 60,
                incoming: 41,
                budget: 100
            })
        );
        assert_eq!(mb.reserve(&key("a"), 1).err(), Some(Refusal::InFlight));
        drop(r);
        assert_eq!(
            mb.pending_bytes(),
            0,
            "a dropped reservation frees its bytes"
        );
        mb.put(&key("a"), vec![7; 60]).unwrap();
        assert_eq!(mb.pending_bytes(), 60);
        let got = mb
            .recv(&key("a"), Instant::now(), &CancelToken::new())
            .unwrap();
        assert_eq!(got, vec![7; 60]);
        assert_eq!(mb.pending_bytes(), 0);
    }

    #[test]
    fn the_frame_a_receiver_waits_for_is_admitted_over_the_budget() {
        // Later slices fill the budget while the receiver waits for an earlier one: refusing
        // it would leave both sides waiting until the sender gives up.
        let mb = Mailbox::new(20);
        mb.put(&key("slice_2"), vec![2; 10]).unwrap();
        mb.put(&key("slice_3"), vec![3; 10]).unwrap();
        assert!(matches!(
            mb.reserve(&key("slice_1"), 10),
            Err(Refusal::Full { .. })
        ));
        let receiver = {
            let mb = mb.clone();
            std::thread::spawn(move || {
                let far = Instant::now() + Duration::from_secs(10);
                mb.recv(&key("slice_1"), far, &CancelToken::new())
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !mb.state.lock().waited.contains_key(&key("slice_1")) {
            assert!(Instant::now() < deadline, "the receiver never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        mb.put(&key("slice_1"), vec![1; 10]).unwrap();
        assert_eq!(receiver.join().unwrap().unwrap(), vec![1; 10]);
        assert!(mb.state.lock().waited.is_empty(), "the waiter is forgotten");
        assert_eq!(mb.pending_bytes(), 20);
        assert!(
            matches!(mb.reserve(&key("slice_4"), 10), Err(Refusal::Full { .. })),
            "frames nobody waits for still respect the budget"
        );
    }

    #[test]
    fn a_delivered_key_is_ignored_until_cleanup() {
        let mb = Mailbox::new(100);
        mb.put(&key("a"), vec![1]).unwrap();
        assert!(matches!(mb.reserve(&key("a"), 1), Ok(Admit::Duplicate)));
        mb.recv(&key("a"), Instant::now(), &CancelToken::new())
            .unwrap();
        mb.put(&key("a"), vec![2]).unwrap();
        assert_eq!(mb.pending_frames(), 0, "the second copy was ignored");
        mb.cleanup("s");
        mb.put(&key("a"), vec![3]).unwrap();
        assert_eq!(mb.pending_frames(), 1, "after cleanup the key is new again");
    }
}

/// Waits for the answer of work running elsewhere (a backend's async runtime) on `rx`, giving
/// up with [`FederationError::Timeout`] at `deadline` or [`FederationError::Canceled`] soon
/// after `cancel` is set; `abort` is called on either, to stop the work. An error the work
/// answers is a transport error naming `key.dst`. The one blocking wait of the broker
/// backends (RabbitMQ, Pulsar), beside the mailbox's own.
pub fn wait_answer<T>(
    rx: &std::sync::mpsc::Receiver<Result<T, String>>,
    key: &MessageKey,
    deadline: Instant,
    cancel: &CancelToken,
    abort: impl FnOnce(),
) -> Result<T, FederationError> {
    use std::sync::mpsc::RecvTimeoutError;
    let start = Instant::now();
    loop {
        match rx.recv_timeout(CANCEL_POLL) {
            Ok(result) => return result.map_err(|e| FederationError::transport(&key.dst, e)),
            Err(RecvTimeoutError::Timeout) => {
                if cancel.is_canceled() {
                    abort();
                    return Err(FederationError::canceled(key));
                }
                if Instant::now() >= deadline {
                    abort();
                    return Err(FederationError::timeout(key, start.elapsed()));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(FederationError::transport(
                    &key.dst,
                    "the transport's runtime stopped during the call",
                ));
            }
        }
    }
}
