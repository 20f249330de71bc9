//! Integration tests: the local backend against the conformance suite, hostile frames, hub
//! limits, and property tests of the wire format.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_federation::local::LocalTransport;
use fate_federation::testing::{Transcript, conformance};
use fate_federation::wire::{self, Head, WireError};
use fate_federation::{
    CancelToken, Direction, Federation, FederationConfig, FederationError, MessageKey, Transport,
};
use fate_types::{Party, Role};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host() -> Party {
    Party::new(Role::Host, "10000")
}

const SID: &str = "202401010000000000000_psi_0_0";

fn config(timeout: Duration) -> FederationConfig {
    FederationConfig {
        timeout,
        ..FederationConfig::default()
    }
}

fn fed(hub: &Arc<LocalTransport>, party: Party, config: FederationConfig) -> Federation {
    Federation::new(hub.clone(), SID, party, config, CancelToken::new())
}

fn key(name: &str) -> MessageKey {
    MessageKey {
        session_id: SID.to_string(),
        name: name.to_string(),
        tag: "t".to_string(),
        src: guest(),
        dst: host(),
    }
}

/// Sends a hand-made frame from the guest to the host and returns what the host's get says.
fn get_forged<T: serde::de::DeserializeOwned + std::fmt::Debug>(
    frame: Vec<u8>,
    config: FederationConfig,
) -> Result<T, FederationError> {
    let hub = LocalTransport::new();
    hub.send(&key("w"), frame).unwrap();
    fed(&hub, host(), config).get_one::<T>("w", "t", &guest())
}

fn wire_reason(result: Result<impl std::fmt::Debug, FederationError>) -> WireError {
    match result {
        Err(FederationError::Frame {
            reason, peer, name, ..
        }) => {
            assert_eq!((peer, name.as_str()), (guest(), "w"));
            reason
        }
        other => panic!("expected a frame error, got {other:?}"),
    }
}

fn inline_frame(declared_len: u64, crc: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = wire::MAGIC.to_vec();
    frame.extend_from_slice(&[wire::VERSION, 0]);
    frame.extend_from_slice(&declared_len.to_be_bytes());
    frame.extend_from_slice(&crc.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn split_header(total: u64, count: u32, slice_size: u32, crc: u32) -> Vec<u8> {
    let mut frame = wire::MAGIC.to_vec();
    frame.extend_from_slice(&[wire::VERSION, 1]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&count.to_be_bytes());
    frame.extend_from_slice(&slice_size.to_be_bytes());
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

// Conformance.

#[test]
fn local_backend_passes_conformance() {
    conformance(&|| LocalTransport::with_max_frame_size(wire::max_frame_len(1 << 20)));
}

#[test]
fn conformance_passes_with_one_shared_hub() {
    let hub = LocalTransport::new();
    conformance(&|| hub.clone());
    assert_eq!(
        hub.pending_frames(),
        0,
        "every case should consume what it sends"
    );
}

/// A backend that flips one byte of every frame over 1000 bytes.
struct Corrupting(Arc<LocalTransport>);

impl Transport for Corrupting {
    fn send(&self, key: &MessageKey, mut frame: Vec<u8>) -> Result<(), FederationError> {
        if frame.len() > 1000 {
            frame[500] ^= 0xff;
        }
        self.0.send(key, frame)
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        self.0.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        "corrupting"
    }
}

#[test]
fn conformance_fails_a_backend_that_corrupts_frames() {
    let outcome = std::panic::catch_unwind(|| {
        conformance(&|| Arc::new(Corrupting(LocalTransport::new())));
    });
    let payload = outcome.expect_err("the suite passed a corrupting backend");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("`corrupting`"), "{message}");
    assert!(message.contains("large_object_is_sliced"), "{message}");
    assert!(message.contains("checksum mismatch"), "{message}");
}

// Hostile frames.

#[test]
fn forged_split_header_of_100_gib_is_refused_at_once() {
    let start = Instant::now();
    let frame = split_header(100 << 30, 1_638_400, 64 << 10, 0);
    let reason = wire_reason(get_forged::<Vec<u8>>(
        frame,
        config(Duration::from_secs(60)),
    ));
    assert_eq!(
        reason,
        WireError::TooLarge {
            size: 100 << 30,
            limit: fate_federation::DEFAULT_MAX_OBJECT_SIZE as u64
        }
    );
    // Refused from the header alone: the get never waited for slices.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn forged_inline_frame_with_huge_length_prefix_is_refused() {
    let reason = wire_reason(get_forged::<Vec<u8>>(
        inline_frame(u64::MAX, 0, b"abc"),
        config(Duration::from_secs(60)),
    ));
    assert!(
        matches!(reason, WireError::TooLarge { size: u64::MAX, .. }),
        "{reason:?}"
    );
    let reason = wire_reason(get_forged::<Vec<u8>>(
        inline_frame(1000, 0, b"abc"),
        config(Duration::from_secs(60)),
    ));
    assert_eq!(
        reason,
        WireError::LengthMismatch {
            declared: 1000,
            actual: 3
        }
    );
}

#[test]
fn huge_length_prefix_inside_a_valid_payload_is_a_decode_error() {
    // A postcard varint declaring 2^63 elements, correctly framed and checksummed.
    let payload = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    for result in [
        get_forged::<Vec<u8>>(
            inline_frame(10, wire::crc32(&payload), &payload),
            config(Duration::from_secs(5)),
        )
        .map(|_| ()),
        get_forged::<String>(
            inline_frame(10, wire::crc32(&payload), &payload),
            config(Duration::from_secs(5)),
        )
        .map(|_| ()),
        get_forged::<Vec<f64>>(
            inline_frame(10, wire::crc32(&payload), &payload),
            config(Duration::from_secs(5)),
        )
        .map(|_| ()),
    ] {
        match result {
            Err(err @ FederationError::Decode { .. }) => {
                assert!(err.to_string().contains("guest:9999"), "{err}")
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
}

#[test]
fn bad_headers_are_refused_with_the_reason() {
    let good = wire::encode_frames(&wire::encode_value(&42u32).unwrap(), 1024)
        .unwrap()
        .remove(0);
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (
            b"NOPE\x01\x00".to_vec(),
            WireError::BadMagic { found: *b"NOPE" },
        ),
        (
            {
                let mut f = good.clone();
                f[4] = 9;
                f
            },
            WireError::UnknownVersion(9),
        ),
        (
            {
                let mut f = good.clone();
                f[5] = 7;
                f
            },
            WireError::UnknownKind(7),
        ),
        (
            good[..3].to_vec(),
            WireError::Truncated {
                what: "common header",
                len: 3,
                need: 6,
            },
        ),
        (
            good[..10].to_vec(),
            WireError::Truncated {
                what: "inline header",
                len: 10,
                need: wire::INLINE_HEADER_LEN,
            },
        ),
        (
            {
                let mut f = good.clone();
                f[5] = 2;
                f
            },
            WireError::UnexpectedKind {
                expected: "inline or split",
                found: "slice",
            },
        ),
    ];
    for (frame, want) in cases {
        let reason = wire_reason(get_forged::<u32>(frame, config(Duration::from_secs(5))));
        assert_eq!(reason, want);
    }
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    let reason = wire_reason(get_forged::<u32>(flipped, config(Duration::from_secs(5))));
    assert!(matches!(reason, WireError::Checksum { .. }), "{reason:?}");
}

#[test]
fn inconsistent_split_headers_are_refused() {
    for (total, count, size) in [(10, 2, 0), (10, 2, 4), (10, 4, 4), (0, 1, 4)] {
        let reason = wire_reason(get_forged::<u32>(
            split_header(total, count, size, 0),
            config(Duration::from_secs(5)),
        ));
        assert_eq!(
            reason,
            WireError::BadSplit {
                total_size: total,
                slice_count: count,
                slice_size: size
            }
        );
    }
}

#[test]
fn object_over_the_receivers_limit_is_refused_inline_and_split() {
    let small = FederationConfig {
        max_object_size: 100,
        ..config(Duration::from_secs(5))
    };
    for max_message_size in [1 << 20, 64] {
        let hub = LocalTransport::new();
        let sender = FederationConfig {
            max_message_size,
            ..config(Duration::from_secs(5))
        };
        fed(&hub, guest(), sender)
            .remote("w", "t", &[host()], &vec![1u8; 500])
            .unwrap();
        let reason =
            wire_reason(fed(&hub, host(), small.clone()).get_one::<Vec<u8>>("w", "t", &guest()));
        assert!(
            matches!(reason, WireError::TooLarge { limit: 100, .. }),
            "{reason:?}"
        );
    }
}

#[test]
fn bad_slices_are_refused() {
    let payload = wire::encode_value(&vec![3u8; 100]).unwrap();
    let frames = wire::encode_frames(&payload, 40).unwrap();
    assert_eq!(frames.len(), 4);
    let slice_key = |i: u32| MessageKey {
        name: wire::slice_name("w", i),
        ..key("w")
    };

    // Slice 1 sent where slice 0 belongs.
    let hub = LocalTransport::new();
    hub.send(&key("w"), frames[0].clone()).unwrap();
    hub.send(&slice_key(0), frames[2].clone()).unwrap();
    let reason = wire_reason(
        fed(&hub, host(), config(Duration::from_secs(5))).get_one::<Vec<u8>>("w", "t", &guest()),
    );
    assert_eq!(
        reason,
        WireError::SliceOrder {
            expected: 0,
            found: 1
        }
    );

    // A slice whose bytes were altered fails the checksum.
    let hub = LocalTransport::new();
    hub.send(&key("w"), frames[0].clone()).unwrap();
    for (i, frame) in frames[1..].iter().enumerate() {
        let mut frame = frame.clone();
        if i == 1 {
            frame[wire::SLICE_HEADER_LEN] ^= 0x40;
        }
        hub.send(&slice_key(i as u32), frame).unwrap();
    }
    let reason = wire_reason(
        fed(&hub, host(), config(Duration::from_secs(5))).get_one::<Vec<u8>>("w", "t", &guest()),
    );
    assert!(matches!(reason, WireError::Checksum { .. }), "{reason:?}");

    // A missing slice is a timeout naming the slice key.
    let hub = LocalTransport::new();
    hub.send(&key("w"), frames[0].clone()).unwrap();
    hub.send(&slice_key(0), frames[1].clone()).unwrap();
    match fed(&hub, host(), config(Duration::from_millis(100))).get_one::<Vec<u8>>(
        "w",
        "t",
        &guest(),
    ) {
        Err(FederationError::Timeout { key, .. }) => assert_eq!(key.name, "w__split__1"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

// Federation rules and errors.

#[test]
fn duplicate_key_error_names_party_name_and_tag() {
    let hub = LocalTransport::new();
    let g = fed(&hub, guest(), config(Duration::from_secs(5)));
    g.remote("en_gradient", "default.iterations-3", &[host()], &1u8)
        .unwrap();
    let err = g
        .remote("en_gradient", "default.iterations-3", &[host()], &1u8)
        .unwrap_err();
    assert!(matches!(
        err,
        FederationError::DuplicateKey {
            direction: Direction::Send,
            ..
        }
    ));
    let text = err.to_string();
    for part in ["send", "en_gradient", "default.iterations-3", "host:10000"] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    // Only one frame reached the hub.
    assert_eq!(hub.pending_frames(), 1);
}

#[test]
fn reserved_and_empty_names_are_refused() {
    let hub = LocalTransport::new();
    let g = fed(&hub, guest(), config(Duration::from_secs(5)));
    for name in ["", "w__split__0", "a__split__b"] {
        assert!(
            matches!(
                g.remote(name, "t", &[host()], &1u8),
                Err(FederationError::InvalidName { .. })
            ),
            "remote accepted name {name:?}"
        );
        assert!(
            matches!(
                g.get_one::<u8>(name, "t", &host()),
                Err(FederationError::InvalidName { .. })
            ),
            "get accepted name {name:?}"
        );
    }
    assert_eq!(hub.pending_frames(), 0);
}

#[test]
fn object_over_max_object_size_is_not_sent_and_does_not_use_the_key() {
    let hub = LocalTransport::new();
    let small = FederationConfig {
        max_object_size: 10,
        ..config(Duration::from_secs(5))
    };
    let g = fed(&hub, guest(), small);
    match g.remote("w", "t", &[host()], &vec![0u8; 20]) {
        Err(FederationError::TooLarge {
            size: 21,
            limit: 10,
            ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(hub.pending_frames(), 0);
    g.remote("w", "t", &[host()], &vec![0u8; 5]).unwrap();
}

#[test]
fn hub_refuses_frames_over_its_limit_naming_the_peer() {
    let hub = LocalTransport::with_max_frame_size(1024);
    let big = FederationConfig {
        max_message_size: 4096,
        ..config(Duration::from_secs(5))
    };
    let err = fed(&hub, guest(), big)
        .remote("w", "t", &[host()], &"x".repeat(2000))
        .unwrap_err();
    assert!(
        matches!(err, FederationError::Transport { ref peer, .. } if *peer == host()),
        "{err:?}"
    );
    assert!(err.to_string().contains("1024"), "{err}");
    assert_eq!(hub.pending_frames(), 0);
}

#[test]
fn hub_refuses_a_second_pending_frame_for_one_key() {
    let hub = LocalTransport::new();
    hub.send(&key("w"), vec![1]).unwrap();
    let err = hub.send(&key("w"), vec![2]).unwrap_err();
    assert!(matches!(err, FederationError::Transport { .. }), "{err:?}");
    let frame = hub
        .recv(&key("w"), Instant::now(), &CancelToken::new())
        .unwrap();
    assert_eq!(frame, vec![1]);
}

#[test]
fn cleanup_drops_only_the_sessions_frames() {
    let hub = LocalTransport::new();
    let g = fed(&hub, guest(), config(Duration::from_millis(100)));
    let other = Federation::new(
        hub.clone(),
        "other_session",
        guest(),
        config(Duration::from_secs(5)),
        CancelToken::new(),
    );
    g.remote("w", "t", &[host()], &vec![7u8; 3000]).unwrap();
    other.remote("w", "t", &[host()], &1u8).unwrap();
    assert_eq!(hub.pending_frames(), 2);
    assert!(hub.pending_bytes() > 3000);
    g.cleanup();
    assert_eq!(hub.pending_frames(), 1);
    let h = fed(&hub, host(), config(Duration::from_millis(100)));
    assert!(matches!(
        h.get_one::<Vec<u8>>("w", "t", &guest()),
        Err(FederationError::Timeout { .. })
    ));
    let h2 = Federation::new(
        hub.clone(),
        "other_session",
        host(),
        config(Duration::from_secs(5)),
        CancelToken::new(),
    );
    assert_eq!(h2.get_one::<u8>("w", "t", &guest()).unwrap(), 1);
}

#[test]
fn transcript_lists_what_a_party_received() {
    let hub = LocalTransport::new();
    let transcript = Transcript::new();
    let cfg = FederationConfig {
        max_message_size: 16,
        ..config(Duration::from_secs(5))
    };
    let g = fed(&hub, guest(), cfg.clone()).with_observer(transcript.clone());
    let h = fed(&hub, host(), cfg).with_observer(transcript.clone());
    g.remote("pub_key", "t", &[host()], &7u8).unwrap();
    g.remote("en_labels", "t", &[host()], &vec![1u8; 40])
        .unwrap();
    let _: u8 = h.get_one("pub_key", "t", &guest()).unwrap();
    let _: Vec<u8> = h.get_one("en_labels", "t", &guest()).unwrap();
    let received = transcript.received_by(&host());
    let names: Vec<(&str, Option<u32>)> = received
        .iter()
        .map(|e| (e.name.as_str(), e.slice))
        .collect();
    assert_eq!(
        names,
        vec![
            ("pub_key", None),
            ("en_labels", None),
            ("en_labels", Some(0)),
            ("en_labels", Some(1)),
            ("en_labels", Some(2))
        ]
    );
    assert!(transcript.received_by(&guest()).is_empty());
    assert_eq!(transcript.sent_by(&guest()).len(), 5);
    assert_eq!(
        transcript.bytes_received_by(&host()),
        received.iter().map(|e| e.frame.len()).sum::<usize>()
    );
    // The recorded frames are the bytes on the wire: the label bytes are visible in them.
    assert!(
        received
            .iter()
            .any(|e| e.frame.windows(8).any(|w| w == [1u8; 8]))
    );
}

// Property tests of the wire format.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: String,
    features: Vec<f64>,
    label: Option<i8>,
    tags: Vec<(u16, String)>,
}

fn record() -> impl Strategy<Value = Record> {
    (
        ".{0,20}",
        prop::collection::vec(-1e9f64..1e9, 0..50),
        prop::option::of(any::<i8>()),
        prop::collection::vec((any::<u16>(), "[a-z]{0,8}"), 0..5),
    )
        .prop_map(|(id, features, label, tags)| Record {
            id,
            features,
            label,
            tags,
        })
}

/// Decodes a frame sequence the way a receiver does, with `frames[0]` the head.
fn decode_all<T: serde::de::DeserializeOwned>(
    frames: &[Vec<u8>],
    max_object_size: usize,
) -> Result<T, String> {
    let first = frames.first().ok_or("no frames")?;
    let payload = match wire::decode_head(first, max_object_size).map_err(|e| e.to_string())? {
        Head::Inline(payload) => payload.to_vec(),
        Head::Split(mut r) => {
            let mut rest = frames[1..].iter();
            while r.next_slice().is_some() {
                let frame = rest.next().ok_or("missing slice")?;
                r.push(frame).map_err(|e| e.to_string())?;
            }
            r.finish().map_err(|e| e.to_string())?
        }
    };
    wire::decode_value(&payload)
}

fn round_trip<T>(value: &T, max_message_size: usize) -> T
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let payload = wire::encode_value(value).unwrap();
    let frames = wire::encode_frames(&payload, max_message_size).unwrap();
    assert!(
        frames
            .iter()
            .all(|f| f.len() <= wire::max_frame_len(max_message_size))
    );
    assert_eq!(frames.len() == 1, payload.len() <= max_message_size);
    decode_all(&frames, 1 << 20).unwrap()
}

/// Frames that start like real ones, so the fuzzing reaches past the magic check.
fn hostile_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..4,
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(prefix, kind, tail)| {
            let mut frame = Vec::new();
            if prefix > 0 {
                frame.extend_from_slice(&wire::MAGIC);
                frame.push(wire::VERSION);
                frame.push(if prefix == 3 { kind } else { prefix - 1 });
            }
            frame.extend_from_slice(&tail);
            frame
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_frames_never_panic_the_decoder(
        head in prop_oneof![prop::collection::vec(any::<u8>(), 0..128), hostile_frame()],
        slices in prop::collection::vec(prop_oneof![prop::collection::vec(any::<u8>(), 0..64), hostile_frame()], 0..4),
        limit in 0usize..1 << 20,
    ) {
        if let Ok(Head::Split(mut r)) = wire::decode_head(&head, limit) {
            prop_assert!(r.total_size() <= limit as u64);
            for slice in &slices {
                if r.push(slice).is_err() {
                    break;
                }
            }
            let _ = r.finish();
        }
        let mut frames = vec![head];
        frames.extend(slices);
        let _ = decode_all::<Record>(&frames, limit);
        let _ = decode_all::<Vec<f64>>(&frames, limit);
        let _ = decode_all::<String>(&frames, limit);
        let _ = wire::decode_value::<Record>(&frames[0]);
    }

    #[test]
    fn values_round_trip_through_the_wire(
        floats in prop::collection::vec(any::<f64>(), 0..200),
        text in ".{0,300}",
        rec in record(),
        max_message_size in 1usize..300,
    ) {
        let got = round_trip(&floats, max_message_size);
        prop_assert!(got.iter().map(|f| f.to_bits()).eq(floats.iter().map(|f| f.to_bits())));
        prop_assert_eq!(round_trip(&text, max_message_size), text);
        prop_assert_eq!(round_trip(&rec, max_message_size), rec);
    }

    #[test]
    fn any_single_byte_corruption_is_detected(
        rec in record(),
        max_message_size in 8usize..200,
        pick in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let payload = wire::encode_value(&rec).unwrap();
        let mut frames = wire::encode_frames(&payload, max_message_size).unwrap();
        let total: usize = frames.iter().map(Vec::len).sum();
        let mut at = pick.index(total);
        for frame in frames.iter_mut() {
            if at < frame.len() {
                frame[at] ^= flip;
                break;
            }
            at -= frame.len();
        }
        prop_assert!(decode_all::<Record>(&frames, 1 << 20).is_err());
    }

    #[test]
    fn records_round_trip_through_the_local_backend(
        recs in prop::collection::vec(record(), 1..4),
        max_message_size in 4usize..64,
    ) {
        let hub = LocalTransport::new();
        let cfg = FederationConfig { max_message_size, ..config(Duration::from_secs(30)) };
        let g = fed(&hub, guest(), cfg.clone());
        let h = fed(&hub, host(), cfg);
        for (i, rec) in recs.iter().enumerate() {
            g.remote("rec", &i.to_string(), &[host()], rec).unwrap();
        }
        for (i, rec) in recs.iter().enumerate().rev() {
            prop_assert_eq!(&h.get_one::<Record>("rec", &i.to_string(), &guest()).unwrap(), rec);
        }
        prop_assert_eq!(hub.pending_frames(), 0);
    }
}
