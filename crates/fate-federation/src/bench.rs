//! What every transport's throughput benchmark shares (`fate bench federation`): the object
//! (a pseudo-random pattern), its checksum, the timed transfer of one framed object between
//! two [`Transport`]s as `Federation::remote` sends and `Federation::get` takes it, and the
//! report of a broker backend's run beside the broker's raw client.
//!
//! The transfer: the sending side frames the object with the federation's own wire format
//! (sliced at `max_message_size`) and sends the frames in order from one thread, each `send`
//! returning once the transport has handed the frame over (for a broker: once the broker
//! confirmed it), as `Federation::remote` does; the receiving side takes the frames in order
//! as `Federation::get` does. The clock runs from the first `send` until the last frame is
//! taken. After it stops, the frames are joined by the federation's [`wire::Reassembler`]
//! (which checks the sender's CRC-32 of the whole object) and the joined object's checksum is
//! compared with the sent one's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_types::{Party, Role};

use crate::{CancelToken, FederationError, MessageKey, Transport, wire};

/// A deterministic, incompressible object of `len` bytes (xorshift64), so that a transport
/// that compresses (Pulsar's LZ4) gains nothing and a reordered slice changes the checksum.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An order-sensitive 64-bit checksum (FNV-1a over 8-byte words in four lanes, then the
/// tail), fast enough to run over a GiB in a fraction of a second.
pub fn checksum(data: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut lanes = [
        0xCBF2_9CE4_8422_2325u64,
        0x8422_2325_CBF2_9CE4,
        0x9E37_79B9_7F4A_7C15,
        0x7F4A_7C15_9E37_79B9,
    ];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *lane = (*lane ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
        }
    }
    let mut h = (data.len() as u64).wrapping_mul(PRIME);
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(PRIME).rotate_left(29);
    }
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

/// Joins received frames as `Federation::get` does: the first frame is the split header (or
/// the whole object), the others the slices in order; the reassembler checks each slice and
/// the CRC-32 the sender computed over the object.
pub fn reassemble(frames: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let bad = |e: wire::WireError| format!("received object is corrupt: {e}");
    let Some(first) = frames.first() else {
        return Err("no frame received".to_string());
    };
    match wire::decode_head(first, usize::MAX).map_err(bad)? {
        wire::Head::Inline(payload) => Ok(payload.to_vec()),
        wire::Head::Split(mut reassembler) => {
            for frame in &frames[1..] {
                reassembler.push(frame).map_err(bad)?;
            }
            reassembler.finish().map_err(bad)
        }
    }
}

/// The sending party of every benchmark: guest 9999.
pub fn sender() -> Party {
    Party::new(Role::Guest, "9999")
}

/// The receiving party of every benchmark: host 10000.
pub fn receiver() -> Party {
    Party::new(Role::Host, "10000")
}

/// Sends `frames` as object `name` of `session` from `src` through `a` and takes them for
/// `dst` from `b`, in order; returns the time from the first send to the last frame taken,
/// and the frames taken. A lost frame fails the run at a generous deadline (10 MiB/s at
/// worst) instead of hanging it.
pub fn transfer(
    a: &Arc<dyn Transport>,
    b: &Arc<dyn Transport>,
    (session, name): (&str, &str),
    (src, dst): (&Party, &Party),
    frames: Vec<Vec<u8>>,
) -> Result<(Duration, Vec<Vec<u8>>), FederationError> {
    let key = {
        let (session, name) = (session.to_string(), name.to_string());
        let (src, dst) = (src.clone(), dst.clone());
        move |i: usize| MessageKey {
            session_id: session.clone(),
            name: if i == 0 {
                name.clone()
            } else {
                wire::slice_name(&name, (i - 1) as u32)
            },
            tag: "bench".to_string(),
            src: src.clone(),
            dst: dst.clone(),
        }
    };
    let n = frames.len();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let start = Instant::now();
    let sender = {
        let (a, key) = (a.clone(), key.clone());
        std::thread::spawn(move || -> Result<(), FederationError> {
            for (i, frame) in frames.into_iter().enumerate() {
                a.send(&key(i), frame)?;
            }
            Ok(())
        })
    };
    let deadline = start + Duration::from_secs(60 + (bytes >> 20) as u64 / 10);
    let cancel = CancelToken::new();
    let mut received = Vec::with_capacity(n);
    for i in 0..n {
        match b.recv(&key(i), deadline, &cancel) {
            Ok(frame) => received.push(frame),
            Err(e) => {
                // The sender's error, if it failed, says more than the receiver's timeout.
                if sender.is_finished()
                    && let Ok(Err(sent)) = sender.join()
                {
                    return Err(sent);
                }
                return Err(e);
            }
        }
    }
    let elapsed = start.elapsed();
    sender
        .join()
        .map_err(|_| FederationError::transport(dst, "the sending thread panicked"))??;
    Ok((elapsed, received))
}

/// What [`ours`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct OursRun {
    /// Time of the timed transfer.
    pub elapsed: Duration,
    /// Frames of the object (split header and slices).
    pub frames: usize,
    /// Checksum of the object the receiver reassembled.
    pub received_checksum: u64,
    /// Bytes of the object the receiver reassembled.
    pub received_bytes: usize,
}

/// Moves `payload` framed at `max_message_size` from `a` (guest 9999) to `b` (host 10000) in
/// a fresh session and reassembles it. A smaller object crosses first, untimed, in the same
/// session: it sets up what a transport sets up on a session's first message (a broker's
/// vhost, user, queues and federation link; a namespace, subscription and replicator), as
/// the raw runs declare their queue or topic before their clock starts.
pub fn ours(
    a: &Arc<dyn Transport>,
    b: &Arc<dyn Transport>,
    session: &str,
    payload: &[u8],
    max_message_size: usize,
) -> Result<OursRun, FederationError> {
    let frame = |payload: &[u8]| {
        wire::encode_frames(payload, max_message_size).map_err(|e| {
            FederationError::transport(
                &receiver(),
                format!("cannot frame {} bytes: {e}", payload.len()),
            )
        })
    };
    let (src, dst) = (sender(), receiver());
    let warm_up = &payload[..payload.len().min(4 * max_message_size)];
    transfer(a, b, (session, "warm_up"), (&src, &dst), frame(warm_up)?)?;
    let frames = frame(payload)?;
    let n = frames.len();
    let (elapsed, received) = transfer(a, b, (session, "object"), (&src, &dst), frames)?;
    let object = reassemble(&received).map_err(|e| FederationError::transport(&src, e))?;
    drop(received);
    Ok(OursRun {
        elapsed,
        frames: n,
        received_checksum: checksum(&object),
        received_bytes: object.len(),
    })
}

/// One broker backend's run: the object through our transport, and the same bytes in
/// messages of the same size through the broker's own client, in the same process.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerReport {
    /// `rabbitmq` or `pulsar`.
    pub backend: &'static str,
    /// `replication` or `client`.
    pub mode: &'static str,
    /// Bytes of the object (and of the raw run).
    pub bytes: usize,
    /// The federation's slice size; the raw run's messages are as large as our frames (a
    /// slice and its header).
    pub max_message_size: usize,
    /// Frames our transport carried (split header and slices).
    pub frames: usize,
    /// Time through our transport.
    pub ours: Duration,
    /// Time through the broker's raw client.
    pub raw: Duration,
    /// Checksum of the object sent.
    pub sent_checksum: u64,
    /// Checksum and size of the object our receiver reassembled.
    pub received_checksum: u64,
    /// See `received_checksum`.
    pub received_bytes: usize,
    /// Checksum and size of the bytes the raw consumer received, joined in order.
    pub raw_checksum: u64,
    /// See `raw_checksum`.
    pub raw_bytes: usize,
}

impl BrokerReport {
    /// Throughput through our transport, GiB/s.
    pub fn ours_gib_per_s(&self) -> f64 {
        gib_per_s(self.bytes, self.ours)
    }

    /// Throughput through the broker's raw client, GiB/s.
    pub fn raw_gib_per_s(&self) -> f64 {
        gib_per_s(self.bytes, self.raw)
    }

    /// Ours over raw.
    pub fn ratio(&self) -> f64 {
        self.ours_gib_per_s() / self.raw_gib_per_s()
    }

    /// Whether both our receiver and the raw consumer got exactly the bytes sent.
    pub fn checksum_ok(&self) -> bool {
        self.received_bytes == self.bytes
            && self.received_checksum == self.sent_checksum
            && self.raw_bytes == self.bytes
            && self.raw_checksum == self.sent_checksum
    }
}

/// What one broker backend's bench is: its name and mode, the object's size and slice size.
#[derive(Clone, Copy, Debug)]
pub struct BrokerRun<'a> {
    pub backend: &'static str,
    pub mode: &'static str,
    pub bytes: usize,
    pub max_message_size: usize,
    /// The session (and raw run) id, [`session_id`].
    pub session: &'a str,
}

/// A session id of its own per run (a vhost, user or namespace prefix): `bench_<pid>_<nanos>`.
pub fn session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("bench_{}_{nanos}", std::process::id())
}

/// A broker backend's bench: `start` makes the sender's then the receiver's transport (one
/// per party, as two nodes run them); [`ours`] between them, cleaned up receiver first and
/// dropped (its runtime with its consumers) before the sender cleans up, since a consumer that
/// outlived its peer's cleanup would log the lost vhost or namespace; then `raw`, the same
/// payload through the broker's own client, returning its time and the bytes its consumer
/// received in order. `fail` turns our run's error into the backend's.
pub fn broker_bench<E>(
    run: BrokerRun<'_>,
    start: impl Fn(&str) -> Result<Arc<dyn Transport>, E>,
    raw: impl FnOnce(&[u8]) -> Result<(Duration, Vec<u8>), E>,
    fail: impl Fn(String) -> E,
) -> Result<BrokerReport, E> {
    if run.bytes == 0 {
        return Err(fail("the benchmark's object is empty".into()));
    }
    let a = start(sender().party_id.as_str())?;
    let b = start(receiver().party_id.as_str())?;
    let payload = pattern(run.bytes);
    let sent_checksum = checksum(&payload);
    let session = run.session;
    let ours_run = ours(&a, &b, session, &payload, run.max_message_size);
    b.cleanup(session);
    drop(b);
    a.cleanup(session);
    drop(a);
    let ours_run = ours_run.map_err(|e| fail(format!("benchmark: {e}")))?;
    let (raw_time, raw_data) = raw(&payload)?;
    drop(payload);
    Ok(BrokerReport {
        backend: run.backend,
        mode: run.mode,
        bytes: run.bytes,
        max_message_size: run.max_message_size,
        frames: ours_run.frames,
        ours: ours_run.elapsed,
        raw: raw_time,
        sent_checksum,
        received_checksum: ours_run.received_checksum,
        received_bytes: ours_run.received_bytes,
        raw_checksum: checksum(&raw_data),
        raw_bytes: raw_data.len(),
    })
}

/// `bytes` moved in `elapsed`, in GiB/s.
pub fn gib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / f64::from(1u32 << 30) / elapsed.as_secs_f64().max(1e-9)
}

/// The raw runs' messages, as (offset, length) into the object: cut as the federation cuts it
/// into slices of `max_message_size`, so that both runs move the same bytes in as many
/// messages of the same sizes. A raw message carries only object bytes; our frame of a
/// slice has a header of [`wire::SLICE_HEADER_LEN`] bytes more (and one split header frame),
/// which favours raw by well under 0.01 % at 1 MiB slices.
pub fn raw_messages(len: usize, max_message_size: usize) -> Vec<(usize, usize)> {
    let size = max_message_size.max(1);
    (0..len)
        .step_by(size)
        .map(|start| (start, size.min(len - start)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_sees_order_length_and_content() {
        let data = pattern(1000);
        let base = checksum(&data);
        assert_eq!(base, checksum(&data.clone()));
        let mut swapped = data.clone();
        swapped.swap(0, 40);
        assert_ne!(base, checksum(&swapped), "reordered bytes");
        let mut flipped = data.clone();
        flipped[999] ^= 1;
        assert_ne!(base, checksum(&flipped), "a changed tail byte");
        assert_ne!(base, checksum(&data[..999]), "a shorter object");
        // Two 32-byte blocks exchanged (a reordered slice).
        let mut blocks = data.clone();
        let (a, b) = blocks.split_at_mut(32);
        a[..32].swap_with_slice(&mut b[..32]);
        assert_ne!(base, checksum(&blocks));
    }

    #[test]
    fn an_object_crosses_the_local_transport_unchanged() {
        let t: Arc<dyn Transport> = crate::LocalTransport::new();
        let payload = pattern((3 << 16) + 5);
        let run = ours(&t, &t, "bench_local", &payload, 1 << 16).unwrap();
        assert_eq!(run.frames, 1 + 4, "split header and four slices");
        assert_eq!(run.received_bytes, payload.len());
        assert_eq!(run.received_checksum, checksum(&payload));
        let messages = raw_messages(payload.len(), 1 << 16);
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[3], (3 << 16, 5));
    }
}
