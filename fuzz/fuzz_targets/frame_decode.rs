//! The federation's frame decoding (`fate_federation::wire`), which reads peer bytes.
//!
//! The input is a sequence of frames, each prefixed by its length (u16, big-endian; the rest of
//! the input when the prefix is cut short): the first goes to `decode_head`, the others to the
//! split reassembler, as `Federation::get` feeds them. Any panic is a bug: bad frames must be
//! a `WireError`. Whatever decodes must also survive a round trip through `encode_frames`.
#![no_main]

use fate_federation::wire::{self, Head};

/// Receiver limit small enough that forged sizes are refused, large enough to reassemble.
const MAX_OBJECT_SIZE: usize = 1 << 20;

fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 2 {
            out.push(data);
            break;
        }
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let (frame, tail) = rest.split_at(len.min(rest.len()));
        out.push(frame);
        data = tail;
    }
    out
}

fn check_round_trip(payload: &[u8]) {
    let slice = 1 + payload.len() % 97;
    let encoded = wire::encode_frames(payload, slice).expect("small payloads always frame");
    let decoded = match wire::decode_head(&encoded[0], usize::MAX).expect("own header decodes") {
        Head::Inline(p) => p.to_vec(),
        Head::Split(mut r) => {
            for frame in &encoded[1..] {
                r.push(frame).expect("own slice decodes");
            }
            r.finish().expect("own object reassembles")
        }
    };
    assert_eq!(decoded, payload);
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let frames = frames(data);
    let Some((first, rest)) = frames.split_first() else {
        let _ = wire::decode_head(data, MAX_OBJECT_SIZE);
        return;
    };
    match wire::decode_head(first, MAX_OBJECT_SIZE) {
        Ok(Head::Inline(payload)) => {
            let _ = wire::decode_value::<(String, Vec<u64>, Option<f64>)>(payload);
            check_round_trip(payload);
        }
        Ok(Head::Split(mut r)) => {
            for frame in rest {
                if r.push(frame).is_err() {
                    return;
                }
            }
            if let Ok(payload) = r.finish() {
                check_round_trip(&payload);
            }
        }
        Err(_) => {}
    }
    // Raw bytes as a slice of some object, too.
    if let Ok(Head::Split(mut r)) = wire::decode_head(
        &wire::encode_frames(&[0u8; 300], 100).unwrap()[0],
        MAX_OBJECT_SIZE,
    ) {
        let _ = r.push(data);
    }
});
