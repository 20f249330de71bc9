//! Test support shared with other crates: a [`Transcript`] observer for privacy tests and the
//! backend-agnostic [`conformance`] suite every [`Transport`] must pass.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use fate_types::{Party, Role};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::wire;
use crate::{
    CancelToken, Direction, Federation, FederationConfig, FederationError, MessageKey, Observer,
    Transport,
};

/// One frame seen by a [`Transcript`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptEntry {
    /// Whether the observing party sent or received the frame.
    pub direction: Direction,
    /// Federation session id.
    pub session_id: String,
    /// Sending party.
    pub src: Party,
    /// Receiving party.
    pub dst: Party,
    /// The object's name; for a slice, the name of the object it belongs to.
    pub name: String,
    /// Message tag.
    pub tag: String,
    /// `Some(i)` for slice `i` of a split object, `None` for the first frame of a message.
    pub slice: Option<u32>,
    /// Frame length in bytes.
    pub bytes: usize,
    /// The frame itself, so a test can check what a party could read.
    pub frame: Vec<u8>,
}

/// An [`Observer`] that records every frame, for privacy and traffic tests. Attach the same
/// transcript to every party's [`Federation`] to see both sides of each message. It keeps a
/// copy of every frame, so use it in tests only.
#[derive(Debug, Default)]
pub struct Transcript {
    entries: Mutex<Vec<TranscriptEntry>>,
}

impl Transcript {
    /// An empty transcript, ready for [`Federation::with_observer`].
    pub fn new() -> Arc<Self> {
        Arc::new(Transcript::default())
    }

    /// Every entry, in the order observed.
    pub fn entries(&self) -> Vec<TranscriptEntry> {
        self.entries.lock().clone()
    }

    /// The frames `party` received (as recorded by the receiving side).
    pub fn received_by(&self, party: &Party) -> Vec<TranscriptEntry> {
        self.filter(|e| e.direction == Direction::Recv && &e.dst == party)
    }

    /// The frames `party` sent (as recorded by the sending side).
    pub fn sent_by(&self, party: &Party) -> Vec<TranscriptEntry> {
        self.filter(|e| e.direction == Direction::Send && &e.src == party)
    }

    /// Total bytes of the frames `party` received.
    pub fn bytes_received_by(&self, party: &Party) -> usize {
        self.received_by(party).iter().map(|e| e.bytes).sum()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.entries.lock().clear();
    }

    fn filter(&self, keep: impl Fn(&TranscriptEntry) -> bool) -> Vec<TranscriptEntry> {
        self.entries
            .lock()
            .iter()
            .filter(|e| keep(e))
            .cloned()
            .collect()
    }

    fn record(&self, direction: Direction, key: &MessageKey, frame: &[u8]) {
        let (name, slice) = match wire::parse_slice_name(&key.name) {
            Some((name, index)) => (name.to_string(), Some(index)),
            None => (key.name.clone(), None),
        };
        self.entries.lock().push(TranscriptEntry {
            direction,
            session_id: key.session_id.clone(),
            src: key.src.clone(),
            dst: key.dst.clone(),
            name,
            tag: key.tag.clone(),
            slice,
            bytes: frame.len(),
            frame: frame.to_vec(),
        });
    }
}

impl Observer for Transcript {
    fn on_send(&self, key: &MessageKey, frame: &[u8]) {
        self.record(Direction::Send, key, frame);
    }

    fn on_recv(&self, key: &MessageKey, frame: &[u8]) {
        self.record(Direction::Recv, key, frame);
    }
}

/// Runs the backend-agnostic federation suite against transports built by `make` (called once
/// per case; returning one shared instance is fine, every case uses its own session ids).
/// Panics with the backend name, the case name and what went wrong on the first failure.
///
/// Cases: round trip of several types, many messages, out-of-order gets, once per key on both
/// sides, get timeout, cancel waking a waiting get, a 5 MiB object split into 64 KiB slices,
/// the inline/split boundary, multi-party broadcast and gather, concurrent senders, session
/// isolation and decode errors for a mistyped get.
pub fn conformance(make: &dyn Fn() -> Arc<dyn Transport>) {
    let backend = make().name();
    for (case, run) in CASES {
        if let Err(message) = run(make) {
            panic!("federation conformance: backend `{backend}` failed case `{case}`: {message}");
        }
    }
}

type CaseFn = fn(&dyn Fn() -> Arc<dyn Transport>) -> Result<(), String>;

const CASES: &[(&str, CaseFn)] = &[
    ("round_trip", round_trip),
    ("many_messages", many_messages),
    ("out_of_order_gets", out_of_order_gets),
    ("once_per_key", once_per_key),
    ("timeout", timeout),
    ("cancel_wakes_waiting_get", cancel_wakes_waiting_get),
    ("large_object_is_sliced", large_object_is_sliced),
    ("split_boundary", split_boundary),
    ("broadcast_and_gather", broadcast_and_gather),
    ("concurrent_senders", concurrent_senders),
    ("session_isolation", session_isolation),
    (
        "mistyped_get_is_a_decode_error",
        mistyped_get_is_a_decode_error,
    ),
];

/// Generous bound for anything that should finish "at once"; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(30);

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host(i: u64) -> Party {
    Party::new(Role::Host, 10000 + i)
}

fn arbiter() -> Party {
    Party::new(Role::Arbiter, "10000")
}

fn session(case: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("conformance_{case}_{}_{n}", std::process::id())
}

fn config() -> FederationConfig {
    FederationConfig {
        timeout: PATIENCE,
        ..FederationConfig::default()
    }
}

fn fed(transport: &Arc<dyn Transport>, session_id: &str, party: Party) -> Federation {
    fed_with(transport, session_id, party, config(), CancelToken::new())
}

fn fed_with(
    transport: &Arc<dyn Transport>,
    session_id: &str,
    party: Party,
    config: FederationConfig,
    cancel: CancelToken,
) -> Federation {
    Federation::new(transport.clone(), session_id, party, config, cancel)
}

fn fail(what: &str, err: FederationError) -> String {
    format!("{what}: {err}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Cipher {
    Plain(f64),
    Packed { bits: u32, words: Vec<u64> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Model {
    name: String,
    weights: Vec<f64>,
    intercept: Option<f64>,
    ciphers: Vec<Cipher>,
    meta: BTreeMap<String, i64>,
}

fn sample_model() -> Model {
    Model {
        name: "hetero_lr_0".to_string(),
        weights: vec![0.5, -1.25, 3e-9, f64::MAX],
        intercept: Some(-0.0),
        ciphers: vec![
            Cipher::Plain(1.5),
            Cipher::Packed {
                bits: 1024,
                words: vec![u64::MAX, 0, 7],
            },
        ],
        meta: BTreeMap::from([("epochs".to_string(), 10), ("batch".to_string(), -1)]),
    }
}

fn round_trip(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("round_trip");
    let (g, h) = (fed(&t, &sid, guest()), fed(&t, &sid, host(0)));
    let floats = vec![0.0, -0.0, 1.5, f64::MIN_POSITIVE, f64::INFINITY, -1e300];
    let text = "guest→host: ünïcödé ✓".to_string();
    let model = sample_model();
    g.remote("floats", "t", &[host(0)], &floats)
        .map_err(|e| fail("remote floats", e))?;
    g.remote("text", "t", &[host(0)], &text)
        .map_err(|e| fail("remote text", e))?;
    g.remote("model", "t", &[host(0)], &model)
        .map_err(|e| fail("remote model", e))?;
    g.remote("empty", "t", &[host(0)], &Vec::<u8>::new())
        .map_err(|e| fail("remote empty", e))?;
    let got: Vec<f64> = h
        .get_one("floats", "t", &guest())
        .map_err(|e| fail("get floats", e))?;
    ensure!(
        got.iter()
            .map(|f| f.to_bits())
            .eq(floats.iter().map(|f| f.to_bits())),
        "floats changed in transit: sent {floats:?}, got {got:?}"
    );
    let got: String = h
        .get_one("text", "t", &guest())
        .map_err(|e| fail("get text", e))?;
    ensure!(
        got == text,
        "string changed in transit: sent {text:?}, got {got:?}"
    );
    let got: Model = h
        .get_one("model", "t", &guest())
        .map_err(|e| fail("get model", e))?;
    ensure!(
        got == model,
        "struct changed in transit: sent {model:?}, got {got:?}"
    );
    let got: Vec<u8> = h
        .get_one("empty", "t", &guest())
        .map_err(|e| fail("get empty", e))?;
    ensure!(
        got.is_empty(),
        "empty vector arrived with {} bytes",
        got.len()
    );
    Ok(())
}

fn many_messages(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("many_messages");
    let (g, h) = (fed(&t, &sid, guest()), fed(&t, &sid, host(0)));
    const N: u64 = 500;
    for i in 0..N {
        g.remote(
            "batch",
            &format!("default.batches-{i}"),
            &[host(0)],
            &(i, i * i),
        )
        .map_err(|e| fail("remote", e))?;
    }
    for i in 0..N {
        let got: (u64, u64) = h
            .get_one("batch", &format!("default.batches-{i}"), &guest())
            .map_err(|e| fail("get", e))?;
        ensure!(got == (i, i * i), "message {i} arrived as {got:?}");
    }
    Ok(())
}

fn out_of_order_gets(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("out_of_order");
    let (g, h) = (fed(&t, &sid, guest()), fed(&t, &sid, host(0)));
    for i in 0..20u32 {
        g.remote(&format!("var{i}"), "t", &[host(0)], &i)
            .map_err(|e| fail("remote", e))?;
    }
    // Odd indices backwards, then even ones forwards.
    let order: Vec<u32> = (0..20)
        .rev()
        .filter(|i| i % 2 == 1)
        .chain((0..20).step_by(2))
        .collect();
    for i in order {
        let got: u32 = h
            .get_one(&format!("var{i}"), "t", &guest())
            .map_err(|e| fail("get", e))?;
        ensure!(got == i, "var{i} arrived as {got}");
    }
    Ok(())
}

fn once_per_key(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("once_per_key");
    let (g, h) = (fed(&t, &sid, guest()), fed(&t, &sid, host(0)));
    g.remote("w", "e0", &[host(0)], &1u8)
        .map_err(|e| fail("first remote", e))?;
    match g.remote("w", "e0", &[host(0)], &2u8) {
        Err(FederationError::DuplicateKey {
            direction: Direction::Send,
            ref peer,
            ..
        }) if *peer == host(0) => {}
        other => {
            return Err(format!(
                "second remote of (w, e0) gave {other:?}, not DuplicateKey"
            ));
        }
    }
    // A clone shares the bookkeeping.
    match g.clone().remote("w", "e0", &[host(0)], &2u8) {
        Err(FederationError::DuplicateKey { .. }) => {}
        other => return Err(format!("remote of (w, e0) through a clone gave {other:?}")),
    }
    // The same peer twice in one call is refused before anything is sent.
    match g.remote("w", "e1", &[host(1), host(1)], &3u8) {
        Err(FederationError::DuplicateKey { ref peer, .. }) if *peer == host(1) => {}
        other => return Err(format!("remote to [host, host] gave {other:?}")),
    }
    // Another tag, or the other direction, is a different key.
    g.remote("w", "e1", &[host(0)], &4u8)
        .map_err(|e| fail("remote with another tag", e))?;
    h.remote("w", "e0", &[guest()], &5u8)
        .map_err(|e| fail("reverse remote", e))?;
    let got: u8 = h
        .get_one("w", "e0", &guest())
        .map_err(|e| fail("first get", e))?;
    ensure!(got == 1, "the first value should arrive, got {got}");
    match h.get_one::<u8>("w", "e0", &guest()) {
        Err(FederationError::DuplicateKey {
            direction: Direction::Recv,
            ref peer,
            ..
        }) if *peer == guest() => {}
        other => {
            return Err(format!(
                "second get of (w, e0) gave {other:?}, not DuplicateKey"
            ));
        }
    }
    match h.get::<u8>("w", "e0", &[guest()]) {
        Err(FederationError::DuplicateKey { .. }) => {}
        other => return Err(format!("get of (w, e0) after get_one gave {other:?}")),
    }
    let got: u8 = g
        .get_one("w", "e0", &host(0))
        .map_err(|e| fail("reverse get", e))?;
    ensure!(got == 5, "reverse message arrived as {got}");
    let got: u8 = h
        .get_one("w", "e1", &guest())
        .map_err(|e| fail("get of another tag", e))?;
    ensure!(got == 4, "message with another tag arrived as {got}");
    Ok(())
}

fn timeout(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("timeout");
    let limit = Duration::from_millis(200);
    let config = FederationConfig {
        timeout: limit,
        ..FederationConfig::default()
    };
    let h = fed_with(&t, &sid, host(0), config, CancelToken::new());
    let start = Instant::now();
    let result = h.get_one::<u32>("never_sent", "t", &guest());
    let elapsed = start.elapsed();
    match result {
        Err(err @ FederationError::Timeout { .. }) => {
            let text = err.to_string();
            ensure!(
                text.contains("never_sent") && text.contains("guest:9999"),
                "timeout message should name the message and the peer: {text}"
            );
        }
        other => {
            return Err(format!(
                "get of a message never sent gave {other:?}, not Timeout"
            ));
        }
    }
    ensure!(
        elapsed >= limit,
        "timed out after {elapsed:?}, before the {limit:?} timeout"
    );
    ensure!(
        elapsed < PATIENCE,
        "timed out only after {elapsed:?} with a {limit:?} timeout"
    );
    Ok(())
}

/// Wraps a transport to report when a `recv` starts, so the cancel case cancels a waiting get.
struct RecvProbe {
    inner: Arc<dyn Transport>,
    entered: Mutex<mpsc::Sender<()>>,
}

impl Transport for RecvProbe {
    fn send(&self, key: &MessageKey, frame: Vec<u8>) -> Result<(), FederationError> {
        self.inner.send(key, frame)
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        let _ = self.entered.lock().send(());
        self.inner.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

fn cancel_wakes_waiting_get(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let (entered_tx, entered_rx) = mpsc::channel();
    let t: Arc<dyn Transport> = Arc::new(RecvProbe {
        inner: make(),
        entered: Mutex::new(entered_tx),
    });
    let sid = session("cancel");
    let cancel = CancelToken::new();
    let config = FederationConfig {
        timeout: Duration::from_secs(3600),
        ..FederationConfig::default()
    };
    let h = fed_with(&t, &sid, host(0), config, cancel.clone());
    std::thread::scope(|scope| {
        let waiter = scope.spawn(move || {
            let start = Instant::now();
            (
                h.get_one::<u32>("never_sent", "t", &guest()),
                start.elapsed(),
            )
        });
        let entered = entered_rx.recv_timeout(PATIENCE);
        cancel.cancel();
        let (result, elapsed) = waiter
            .join()
            .map_err(|_| "the waiting get panicked".to_string())?;
        ensure!(entered.is_ok(), "the get never called Transport::recv");
        match result {
            Err(FederationError::Canceled { ref key }) if key.name == "never_sent" => {}
            other => return Err(format!("canceled get gave {other:?}, not Canceled")),
        }
        ensure!(
            elapsed < PATIENCE,
            "cancel took {elapsed:?} to wake the get"
        );
        Ok(())
    })?;
    // A canceled session refuses further waits at once, even for messages that arrived.
    let g = fed(&t, &sid, guest());
    g.remote("late", "t", &[host(0)], &1u32)
        .map_err(|e| fail("remote", e))?;
    let h = fed_with(&t, &sid, host(0), config_with_timeout(PATIENCE), cancel);
    match h.get_one::<u32>("late", "t", &guest()) {
        Err(FederationError::Canceled { .. }) => {}
        other => {
            return Err(format!(
                "get on a canceled session gave {other:?}, not Canceled"
            ));
        }
    }
    // The refused get left the frame in place; a live handle still receives it.
    let live = fed(&t, &sid, host(0));
    let got: u32 = live
        .get_one("late", "t", &guest())
        .map_err(|e| fail("get on a live handle", e))?;
    ensure!(got == 1, "message arrived as {got}");
    Ok(())
}

fn config_with_timeout(timeout: Duration) -> FederationConfig {
    FederationConfig {
        timeout,
        ..FederationConfig::default()
    }
}

fn large_object_is_sliced(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("large_object");
    let max_message_size = 64 << 10;
    let config = FederationConfig {
        max_message_size,
        timeout: PATIENCE,
        ..Default::default()
    };
    let transcript = Transcript::new();
    let g = fed_with(&t, &sid, guest(), config.clone(), CancelToken::new())
        .with_observer(transcript.clone());
    let h =
        fed_with(&t, &sid, host(0), config, CancelToken::new()).with_observer(transcript.clone());
    // 5 MiB of f64s.
    let value: Vec<f64> = (0..(5 << 20) / 8)
        .map(|i| f64::from(i as u32) * 0.5 - 7.0)
        .collect();
    let payload_len = wire::encode_value(&value)
        .map_err(|e| format!("encode: {e}"))?
        .len();
    let n_slices = payload_len.div_ceil(max_message_size);
    g.remote("big", "t", &[host(0)], &value)
        .map_err(|e| fail("remote", e))?;
    let got: Vec<f64> = h
        .get_one("big", "t", &guest())
        .map_err(|e| fail("get", e))?;
    ensure!(got == value, "the 5 MiB vector changed in transit");
    let received = transcript.received_by(&host(0));
    ensure!(
        received.len() == n_slices + 1,
        "expected a split header and {n_slices} slices, host received {} frames",
        received.len()
    );
    ensure!(
        received
            .iter()
            .skip(1)
            .map(|e| e.slice)
            .eq((0..n_slices as u32).map(Some)),
        "slices arrived under unexpected keys"
    );
    let largest = received.iter().map(|e| e.bytes).max().unwrap_or(0);
    ensure!(
        largest <= wire::max_frame_len(max_message_size),
        "a frame of {largest} bytes exceeds max_message_size {max_message_size} plus header"
    );
    ensure!(
        transcript.sent_by(&guest()).len() == n_slices + 1,
        "the sender should record the same {} frames",
        n_slices + 1
    );
    Ok(())
}

fn split_boundary(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("split_boundary");
    let config = FederationConfig {
        max_message_size: 1000,
        timeout: PATIENCE,
        ..Default::default()
    };
    let transcript = Transcript::new();
    let g = fed_with(&t, &sid, guest(), config.clone(), CancelToken::new())
        .with_observer(transcript.clone());
    let h = fed_with(&t, &sid, host(0), config, CancelToken::new());
    // A string of 998 bytes encodes to 1000 bytes (2-byte length prefix): exactly one message.
    let fits = "a".repeat(998);
    let over = "b".repeat(999);
    g.remote("fits", "t", &[host(0)], &fits)
        .map_err(|e| fail("remote fits", e))?;
    g.remote("over", "t", &[host(0)], &over)
        .map_err(|e| fail("remote over", e))?;
    let frames = |name: &str| {
        transcript
            .entries()
            .iter()
            .filter(|e| e.name == name)
            .count()
    };
    ensure!(
        frames("fits") == 1,
        "a 1000-byte payload took {} frames, not 1",
        frames("fits")
    );
    ensure!(
        frames("over") == 3,
        "a 1001-byte payload took {} frames, not 3",
        frames("over")
    );
    let got: String = h
        .get_one("fits", "t", &guest())
        .map_err(|e| fail("get fits", e))?;
    ensure!(got == fits, "inline string changed in transit");
    let got: String = h
        .get_one("over", "t", &guest())
        .map_err(|e| fail("get over", e))?;
    ensure!(got == over, "split string changed in transit");
    Ok(())
}

fn broadcast_and_gather(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("broadcast");
    let hosts: Vec<Party> = (0..3).map(host).collect();
    let g = fed(&t, &sid, guest());
    let a = fed(&t, &sid, arbiter());
    std::thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .iter()
            .map(|me| {
                let f = fed(&t, &sid, me.clone());
                scope.spawn(move || -> Result<(), String> {
                    let key: String = f
                        .get_one("pubkey", "t", &arbiter())
                        .map_err(|e| fail("host get", e))?;
                    ensure!(key == "n=2047", "{} got public key {key:?}", f.local());
                    let mine = format!("grad from {}", f.local());
                    f.remote("grad", "t", &[guest(), arbiter()], &mine)
                        .map_err(|e| fail("host remote", e))
                })
            })
            .collect();
        a.remote("pubkey", "t", &hosts, "n=2047")
            .map_err(|e| fail("arbiter broadcast", e))?;
        // Gather in an order different from the hosts' ids.
        let order = [hosts[2].clone(), hosts[0].clone(), hosts[1].clone()];
        let got: Vec<String> = g
            .get("grad", "t", &order)
            .map_err(|e| fail("guest gather", e))?;
        let want: Vec<String> = order.iter().map(|p| format!("grad from {p}")).collect();
        ensure!(
            got == want,
            "guest gathered {got:?}, expected {want:?} (in src order)"
        );
        let got: Vec<String> = a
            .get("grad", "t", &hosts)
            .map_err(|e| fail("arbiter gather", e))?;
        let want: Vec<String> = hosts.iter().map(|p| format!("grad from {p}")).collect();
        ensure!(got == want, "arbiter gathered {got:?}, expected {want:?}");
        for worker in workers {
            worker
                .join()
                .map_err(|_| "a host thread panicked".to_string())??;
        }
        Ok(())
    })
}

fn concurrent_senders(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("concurrent");
    const N_HOSTS: u64 = 4;
    const N_MSGS: u64 = 50;
    let g = fed(&t, &sid, guest());
    std::thread::scope(|scope| {
        let senders: Vec<_> = (0..N_HOSTS)
            .map(|i| {
                let f = fed(&t, &sid, host(i));
                scope.spawn(move || -> Result<(), String> {
                    for m in 0..N_MSGS {
                        f.remote("x", &format!("m{m}"), &[guest()], &(i, m))
                            .map_err(|e| fail("remote", e))?;
                    }
                    Ok(())
                })
            })
            .collect();
        // Receive while the hosts are still sending, round-robin over hosts.
        for m in 0..N_MSGS {
            for i in 0..N_HOSTS {
                let got: (u64, u64) = g
                    .get_one("x", &format!("m{m}"), &host(i))
                    .map_err(|e| fail("get", e))?;
                ensure!(
                    got == (i, m),
                    "message m{m} from host {i} arrived as {got:?}"
                );
            }
        }
        for sender in senders {
            sender
                .join()
                .map_err(|_| "a sender thread panicked".to_string())??;
        }
        Ok(())
    })
}

fn session_isolation(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let (s1, s2) = (session("isolation"), session("isolation"));
    fed(&t, &s1, guest())
        .remote("w", "t", &[host(0)], &1u32)
        .map_err(|e| fail("remote s1", e))?;
    fed(&t, &s2, guest())
        .remote("w", "t", &[host(0)], &2u32)
        .map_err(|e| fail("remote s2", e))?;
    let got2: u32 = fed(&t, &s2, host(0))
        .get_one("w", "t", &guest())
        .map_err(|e| fail("get s2", e))?;
    let got1: u32 = fed(&t, &s1, host(0))
        .get_one("w", "t", &guest())
        .map_err(|e| fail("get s1", e))?;
    ensure!(
        (got1, got2) == (1, 2),
        "sessions mixed up: got {got1} and {got2}, expected 1 and 2"
    );
    Ok(())
}

fn mistyped_get_is_a_decode_error(make: &dyn Fn() -> Arc<dyn Transport>) -> Result<(), String> {
    let t = make();
    let sid = session("mistyped");
    let (g, h) = (fed(&t, &sid, guest()), fed(&t, &sid, host(0)));
    g.remote("m", "t", &[host(0)], "not a model")
        .map_err(|e| fail("remote", e))?;
    match h.get_one::<Model>("m", "t", &guest()) {
        Err(err @ FederationError::Decode { .. }) => {
            let text = err.to_string();
            ensure!(
                text.contains("guest:9999"),
                "decode error should name the peer: {text}"
            );
            Ok(())
        }
        other => Err(format!(
            "get of a string as a struct gave {other:?}, not Decode"
        )),
    }
}
