//! Bounds on the frames a mailbox buffers for its receivers (issue #10): a partner must not be
//! able to pin this party's memory with frames for sessions nobody here opens.
//!
//! Every backend that buffers frames until a `recv` asks for them (the in-process
//! [`LocalTransport`](crate::LocalTransport), the gRPC transport's mailbox) keeps a [`Usage`]
//! and applies [`MailboxLimits`]:
//! - at most [`MailboxLimits::session_bytes`] buffered for one federation session,
//! - at most [`MailboxLimits::peer_bytes`] buffered from one sending party (by party id: a
//!   site),
//! - a frame nobody asked for is dropped once it is older than
//!   [`MailboxLimits::unclaimed_ttl`]: "nobody asked" means no `recv` of its session is
//!   waiting and none started or ended within that time. A session whose receiver is working
//!   keeps its early frames.
//!
//! A push over a limit is refused with an [`OverLimit`] naming the session and the party (the
//! gRPC backend answers `RESOURCE_EXHAUSTED`, which senders retry with backoff, so a receiver
//! that drains its session lets the sender go on); nothing of a refused frame is kept.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::MessageKey;

/// Default bound on the bytes buffered for one session: 256 MiB. A session's sender runs
/// ahead of its receiver by at most this much (FATE's objects travel in 1 MiB slices).
pub const DEFAULT_SESSION_BYTES: usize = 256 << 20;
/// Default bound on the bytes buffered from one sending party: 1 GiB, a few sessions' worth.
pub const DEFAULT_PEER_BYTES: usize = 1 << 30;
/// Default expiry of frames nobody asked for: 10 minutes, FATE's default `get` timeout, after
/// which a receiver would have given up on them anyway.
pub const DEFAULT_UNCLAIMED_TTL: Duration = Duration::from_secs(600);

/// Bounds of a mailbox, see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxLimits {
    /// Most bytes buffered for one federation session.
    pub session_bytes: usize,
    /// Most bytes buffered from one sending party.
    pub peer_bytes: usize,
    /// Age after which a frame of a session nobody asks for is dropped.
    pub unclaimed_ttl: Duration,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        MailboxLimits {
            session_bytes: DEFAULT_SESSION_BYTES,
            peer_bytes: DEFAULT_PEER_BYTES,
            unclaimed_ttl: DEFAULT_UNCLAIMED_TTL,
        }
    }
}

impl MailboxLimits {
    /// How often a mailbox looks for expired frames: a quarter of the expiry, between 10 ms
    /// and 30 s.
    pub fn sweep_interval(&self) -> Duration {
        (self.unclaimed_ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

/// Which bound a push would exceed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// [`MailboxLimits::session_bytes`].
    Session,
    /// [`MailboxLimits::peer_bytes`].
    Peer,
}

/// A push refused by [`Usage::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverLimit {
    /// The bound exceeded.
    pub bound: Bound,
    /// The frame's session.
    pub session_id: String,
    /// The sending party's id.
    pub party_id: String,
    /// Bytes already buffered under that bound.
    pub held: usize,
    /// Bytes of the refused frame.
    pub incoming: usize,
    /// The bound.
    pub limit: usize,
}

impl fmt::Display for OverLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (held, incoming, limit) = (self.held, self.incoming, self.limit);
        match self.bound {
            Bound::Session => write!(
                f,
                "session `{}` already buffers {held} bytes; {incoming} more from party {} would \
                 exceed the per-session limit of {limit} bytes",
                self.session_id, self.party_id
            ),
            Bound::Peer => write!(
                f,
                "party {} already has {held} bytes buffered; {incoming} more for session `{}` \
                 would exceed the per-party limit of {limit} bytes",
                self.party_id, self.session_id
            ),
        }
    }
}

#[derive(Debug)]
struct Asked {
    waiters: usize,
    last: Instant,
}

/// Bytes buffered per session and per sending party, and when each session was last asked
/// for. The mailbox calls [`Usage::add`] and [`Usage::remove`] as frames come and go.
#[derive(Debug, Default)]
pub struct Usage {
    by_session: HashMap<String, usize>,
    by_peer: HashMap<String, usize>,
    asked: HashMap<String, Asked>,
}

impl Usage {
    /// Whether `len` more bytes under `key` stay within `limits`.
    pub fn check(
        &self,
        key: &MessageKey,
        len: usize,
        limits: &MailboxLimits,
    ) -> Result<(), OverLimit> {
        let over = |bound, held: usize, limit: usize| {
            (held.saturating_add(len) > limit).then(|| OverLimit {
                bound,
                session_id: key.session_id.clone(),
                party_id: key.src.party_id.to_string(),
                held,
                incoming: len,
                limit,
            })
        };
        let session = self.session_bytes(&key.session_id);
        let peer = self.peer_bytes(key.src.party_id.as_str());
        match over(Bound::Session, session, limits.session_bytes)
            .or_else(|| over(Bound::Peer, peer, limits.peer_bytes))
        {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// Counts `len` bytes buffered under `key`.
    pub fn add(&mut self, key: &MessageKey, len: usize) {
        *self.by_session.entry(key.session_id.clone()).or_default() += len;
        *self
            .by_peer
            .entry(key.src.party_id.to_string())
            .or_default() += len;
    }

    /// Stops counting `len` bytes buffered under `key`.
    pub fn remove(&mut self, key: &MessageKey, len: usize) {
        fn sub(map: &mut HashMap<String, usize>, name: &str, len: usize) {
            if let Some(held) = map.get_mut(name) {
                *held = held.saturating_sub(len);
                if *held == 0 {
                    map.remove(name);
                }
            }
        }
        sub(&mut self.by_session, &key.session_id, len);
        sub(&mut self.by_peer, key.src.party_id.as_str(), len);
    }

    /// Bytes buffered for `session_id`.
    pub fn session_bytes(&self, session_id: &str) -> usize {
        self.by_session.get(session_id).copied().unwrap_or(0)
    }

    /// Bytes buffered from party `party_id`.
    pub fn peer_bytes(&self, party_id: &str) -> usize {
        self.by_peer.get(party_id).copied().unwrap_or(0)
    }

    /// A `recv` of `session_id` starts waiting.
    pub fn begin_recv(&mut self, session_id: &str, now: Instant) {
        let asked = self.asked.entry(session_id.to_string()).or_insert(Asked {
            waiters: 0,
            last: now,
        });
        asked.waiters += 1;
        asked.last = now;
    }

    /// A `recv` of `session_id` stops waiting.
    pub fn end_recv(&mut self, session_id: &str, now: Instant) {
        if let Some(asked) = self.asked.get_mut(session_id) {
            asked.waiters = asked.waiters.saturating_sub(1);
            asked.last = now;
        }
    }

    /// Whether a frame of `session_id` that arrived at `arrived` has expired at `now`: older
    /// than the expiry, no `recv` of its session waiting and none within the expiry.
    pub fn is_unclaimed(
        &self,
        session_id: &str,
        arrived: Instant,
        now: Instant,
        ttl: Duration,
    ) -> bool {
        if now.saturating_duration_since(arrived) < ttl {
            return false;
        }
        match self.asked.get(session_id) {
            Some(asked) => asked.waiters == 0 && now.saturating_duration_since(asked.last) >= ttl,
            None => true,
        }
    }

    /// Forgets sessions nobody asked for within `ttl` (call after a sweep).
    pub fn forget_idle(&mut self, now: Instant, ttl: Duration) {
        self.asked
            .retain(|_, a| a.waiters > 0 || now.saturating_duration_since(a.last) < ttl);
    }

    /// Forgets a session (its cleanup); its frames must have been [`Usage::remove`]d.
    pub fn forget_session(&mut self, session_id: &str) {
        self.asked.remove(session_id);
        self.by_session.remove(session_id);
    }
}

/// A frame buffered until its `recv` asks for it.
#[derive(Debug)]
pub struct Pending {
    pub frame: Vec<u8>,
    pub arrived: Instant,
}

impl Usage {
    /// Drops the frames of `pending` nobody asked for ([`Usage::is_unclaimed`]), accounting
    /// for them, then forgets idle sessions. Returns (frames, bytes) dropped.
    pub fn expire(
        &mut self,
        pending: &mut HashMap<MessageKey, Pending>,
        now: Instant,
        ttl: Duration,
    ) -> (usize, usize) {
        let (mut frames, mut bytes) = (0, 0);
        pending.retain(|key, p| {
            let expired = self.is_unclaimed(&key.session_id, p.arrived, now, ttl);
            if expired {
                self.remove(key, p.frame.len());
                frames += 1;
                bytes += p.frame.len();
                tracing::warn!(%key, n_bytes = p.frame.len(), "Dropped a frame nobody asked for.");
            }
            !expired
        });
        self.forget_idle(now, ttl);
        (frames, bytes)
    }
}
