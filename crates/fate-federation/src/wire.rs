//! The versioned binary frame format (sans-IO), modeled on FATE 2.x's split envelope
//! (fate-spec §2.2): a value is postcard-encoded into a payload, and the payload travels either
//! inline in one frame or, when larger than `max_message_size`, as a split header followed by
//! slice frames sent under derived keys ([`slice_name`]).
//!
//! Every frame starts with the 6-byte common header `MAGIC (4) | VERSION (1) | kind (1)`.
//! Integers are big-endian, as in FATE's `struct.pack("!Q...")`.
//!
//! | kind | layout after the common header | sent under |
//! |---|---|---|
//! | 0 inline | `len u64, crc32 u32, payload[len]` | the message key |
//! | 1 split | `total_size u64, slice_count u32, slice_size u32, crc32 u32` | the message key |
//! | 2 slice | `index u32, len u32, data[len]` | `slice_name(name, index)` |
//!
//! The CRC-32 (IEEE) covers the whole payload. Decoding checks the declared sizes against the
//! receiver's `max_object_size` before allocating, and checks slice order, slice sizes, slice
//! count and checksum; bad input is a [`WireError`], never a panic.

use serde::de::DeserializeOwned;

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = *b"FTFD";
/// The wire format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Infix of the derived names slices travel under (FATE: `__table_persistent_split__`).
pub const SPLIT_MARKER: &str = "__split__";

const KIND_INLINE: u8 = 0;
const KIND_SPLIT: u8 = 1;
const KIND_SLICE: u8 = 2;

const COMMON_LEN: usize = 6;
/// Length of an inline frame's header (the payload follows).
pub const INLINE_HEADER_LEN: usize = COMMON_LEN + 8 + 4;
/// Length of a split header frame.
pub const SPLIT_HEADER_LEN: usize = COMMON_LEN + 8 + 4 + 4 + 4;
/// Length of a slice frame's header (the data follows).
pub const SLICE_HEADER_LEN: usize = COMMON_LEN + 4 + 4;
/// Largest header overhead of any frame.
pub const FRAME_OVERHEAD: usize = SPLIT_HEADER_LEN;

/// Largest frame produced for a given `max_message_size`: transports size their limits with it.
pub const fn max_frame_len(max_message_size: usize) -> usize {
    max_message_size.saturating_add(FRAME_OVERHEAD)
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame ends before its header does.
    #[error("frame of {len} bytes is truncated: its {what} needs {need} bytes")]
    Truncated {
        /// The part that is cut short: `common header`, `inline header`, `split header` or
        /// `slice header`.
        what: &'static str,
        /// Bytes present.
        len: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// The frame does not start with [`MAGIC`].
    #[error("bad magic {found:02x?}, expected {MAGIC:02x?}")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// The frame was written by an unknown format version.
    #[error("unsupported wire version {0} (this build reads version {VERSION})")]
    UnknownVersion(u8),
    /// The kind byte is not one of inline, split or slice.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A known kind of frame arrived where another was expected.
    #[error("unexpected {found} frame where {expected} was expected")]
    UnexpectedKind {
        /// The kind expected here.
        expected: &'static str,
        /// The kind found.
        found: &'static str,
    },
    /// A declared size is over the receiver's `max_object_size`.
    #[error("declared object size {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Declared size.
        size: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// A declared length disagrees with the bytes present.
    #[error("declared length {declared} does not match the {actual} bytes present")]
    LengthMismatch {
        /// Declared length.
        declared: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A split header's fields are inconsistent.
    #[error(
        "split header declares {slice_count} slices of {slice_size} bytes for {total_size} bytes"
    )]
    BadSplit {
        /// Declared object size.
        total_size: u64,
        /// Declared number of slices.
        slice_count: u32,
        /// Declared slice size.
        slice_size: u32,
    },
    /// A slice arrived out of order or beyond the declared count.
    #[error("slice {found} arrived where slice {expected} was expected")]
    SliceOrder {
        /// The index expected next.
        expected: u32,
        /// The index found.
        found: u32,
    },
    /// A slice arrived after all declared slices.
    #[error("slice {index} arrived after all {slice_count} declared slices")]
    ExtraSlice {
        /// The index found.
        index: u32,
        /// Declared number of slices.
        slice_count: u32,
    },
    /// A slice's length disagrees with the split header.
    #[error("slice {index} has {len} bytes, the split header implies {expected}")]
    SliceLength {
        /// Slice index.
        index: u32,
        /// Bytes in the slice.
        len: u64,
        /// Bytes the header implies.
        expected: u64,
    },
    /// Reassembly finished before all slices arrived.
    #[error("object incomplete: {received} of {total} bytes received")]
    Incomplete {
        /// Bytes received.
        received: u64,
        /// Declared total.
        total: u64,
    },
    /// The payload's CRC-32 differs from the header's.
    #[error("checksum mismatch: header says {expected:08x}, payload has {actual:08x}")]
    Checksum {
        /// CRC-32 in the header.
        expected: u32,
        /// CRC-32 of the bytes received.
        actual: u32,
    },
    /// The object cannot be framed (more than `u32::MAX` slices).
    #[error("object of {size} bytes needs more than {max} slices of {slice_size} bytes")]
    TooManySlices {
        /// Object size.
        size: u64,
        /// Slice size.
        slice_size: u32,
        /// Most slices a split header can declare.
        max: u32,
    },
}

/// The derived name slice `index` of object `name` travels under.
pub fn slice_name(name: &str, index: u32) -> String {
    format!("{name}{SPLIT_MARKER}{index}")
}

/// Splits a derived slice name into the object name and slice index; `None` for other names.
pub fn parse_slice_name(name: &str) -> Option<(&str, u32)> {
    let (base, index) = name.rsplit_once(SPLIT_MARKER)?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, index.parse().ok()?))
}

/// Encodes `value` with postcard, the federation's value encoding.
pub fn encode_value<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| e.to_string())
}

/// Decodes a payload produced by [`encode_value`]. Trailing bytes are an error. Decoding reads
/// from the bounded slice: a length prefix larger than the input fails rather than allocates.
pub fn decode_value<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes::<T>(payload).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the value", rest.len()));
    }
    Ok(value)
}

/// Frames a payload: one inline frame when it fits in `max_message_size` (clamped to
/// `1..=u32::MAX`), otherwise a split header followed by the slice frames in index order.
/// The first frame goes under the message key, frame `i + 1` under `slice_name(name, i)`.
pub fn encode_frames(payload: &[u8], max_message_size: usize) -> Result<Vec<Vec<u8>>, WireError> {
    let slice_size = max_message_size.clamp(1, u32::MAX as usize);
    let checksum = crc32(payload);
    if payload.len() <= slice_size {
        let mut frame = Vec::with_capacity(INLINE_HEADER_LEN + payload.len());
        put_common(&mut frame, KIND_INLINE);
        frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        frame.extend_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(payload);
        return Ok(vec![frame]);
    }
    let slice_count = u32::try_from(payload.len().div_ceil(slice_size)).map_err(|_| {
        WireError::TooManySlices {
            size: payload.len() as u64,
            slice_size: slice_size as u32,
            max: u32::MAX,
        }
    })?;
    let mut frames = Vec::with_capacity(slice_count as usize + 1);
    let mut head = Vec::with_capacity(SPLIT_HEADER_LEN);
    put_common(&mut head, KIND_SPLIT);
    head.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    head.extend_from_slice(&slice_count.to_be_bytes());
    head.extend_from_slice(&(slice_size as u32).to_be_bytes());
    head.extend_from_slice(&checksum.to_be_bytes());
    frames.push(head);
    for (index, data) in (0u32..).zip(payload.chunks(slice_size)) {
        let mut frame = Vec::with_capacity(SLICE_HEADER_LEN + data.len());
        put_common(&mut frame, KIND_SLICE);
        frame.extend_from_slice(&index.to_be_bytes());
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        frames.push(frame);
    }
    Ok(frames)
}

/// The first frame of a message, decoded.
#[derive(Debug)]
pub enum Head<'a> {
    /// The whole payload, already checked against its length and checksum.
    Inline(&'a [u8]),
    /// A checked split header; feed it the slice frames.
    Split(Reassembler),
}

/// Decodes the first frame of a message (inline or split header), refusing any declared size
/// over `max_object_size` before anything is allocated.
pub fn decode_head(frame: &[u8], max_object_size: usize) -> Result<Head<'_>, WireError> {
    let limit = max_object_size as u64;
    match read_common(frame)? {
        KIND_INLINE => {
            let (need, what) = (INLINE_HEADER_LEN, "inline header");
            // The whole header must be present before the payload is sliced off after it.
            check_len(frame, need, what)?;
            let len = read_u64(frame, COMMON_LEN, need, what)?;
            if len > limit {
                return Err(WireError::TooLarge { size: len, limit });
            }
            let payload = frame.get(INLINE_HEADER_LEN..).unwrap_or_default();
            if len != payload.len() as u64 {
                return Err(WireError::LengthMismatch {
                    declared: len,
                    actual: payload.len() as u64,
                });
            }
            let expected = read_u32(frame, COMMON_LEN + 8, need, what)?;
            check_crc(expected, payload)?;
            Ok(Head::Inline(payload))
        }
        KIND_SPLIT => {
            let (need, what) = (SPLIT_HEADER_LEN, "split header");
            check_len(frame, need, what)?;
            let total_size = read_u64(frame, COMMON_LEN, need, what)?;
            let slice_count = read_u32(frame, COMMON_LEN + 8, need, what)?;
            let slice_size = read_u32(frame, COMMON_LEN + 12, need, what)?;
            let checksum = read_u32(frame, COMMON_LEN + 16, need, what)?;
            if frame.len() != need {
                return Err(WireError::LengthMismatch {
                    declared: need as u64,
                    actual: frame.len() as u64,
                });
            }
            if total_size > limit {
                return Err(WireError::TooLarge {
                    size: total_size,
                    limit,
                });
            }
            if slice_size == 0
                || total_size.div_ceil(u64::from(slice_size)) != u64::from(slice_count)
            {
                return Err(WireError::BadSplit {
                    total_size,
                    slice_count,
                    slice_size,
                });
            }
            Ok(Head::Split(Reassembler {
                total_size,
                slice_count,
                slice_size,
                checksum,
                next: 0,
                buf: Vec::new(),
            }))
        }
        KIND_SLICE => Err(WireError::UnexpectedKind {
            expected: "inline or split",
            found: "slice",
        }),
        other => Err(WireError::UnknownKind(other)),
    }
}

/// Joins the slices of a split object, checking each against the header. Built only by
/// [`decode_head`], so its header has passed the size checks. Memory grows with the bytes
/// actually received and never beyond the declared (checked) total.
#[derive(Debug)]
pub struct Reassembler {
    total_size: u64,
    slice_count: u32,
    slice_size: u32,
    checksum: u32,
    next: u32,
    buf: Vec<u8>,
}

impl Reassembler {
    /// Declared object size in bytes.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// Declared number of slices.
    pub fn slice_count(&self) -> u32 {
        self.slice_count
    }

    /// Index of the slice expected next, or `None` once all slices are in.
    pub fn next_slice(&self) -> Option<u32> {
        (self.next < self.slice_count).then_some(self.next)
    }

    /// Appends the next slice frame.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), WireError> {
        match read_common(frame)? {
            KIND_SLICE => {}
            KIND_INLINE => {
                return Err(WireError::UnexpectedKind {
                    expected: "slice",
                    found: "inline",
                });
            }
            KIND_SPLIT => {
                return Err(WireError::UnexpectedKind {
                    expected: "slice",
                    found: "split",
                });
            }
            other => return Err(WireError::UnknownKind(other)),
        }
        let (need, what) = (SLICE_HEADER_LEN, "slice header");
        check_len(frame, need, what)?;
        let index = read_u32(frame, COMMON_LEN, need, what)?;
        let len = read_u32(frame, COMMON_LEN + 4, need, what)?;
        if self.next >= self.slice_count {
            return Err(WireError::ExtraSlice {
                index,
                slice_count: self.slice_count,
            });
        }
        if index != self.next {
            return Err(WireError::SliceOrder {
                expected: self.next,
                found: index,
            });
        }
        let data = frame.get(SLICE_HEADER_LEN..).unwrap_or_default();
        if u64::from(len) != data.len() as u64 {
            return Err(WireError::LengthMismatch {
                declared: u64::from(len),
                actual: data.len() as u64,
            });
        }
        let done = u64::from(index) * u64::from(self.slice_size);
        let expected = self
            .total_size
            .saturating_sub(done)
            .min(u64::from(self.slice_size));
        if data.len() as u64 != expected {
            return Err(WireError::SliceLength {
                index,
                len: data.len() as u64,
                expected,
            });
        }
        // Grow geometrically but never past the declared total, which was checked against
        // max_object_size; a forged header alone allocates nothing.
        let needed = self.buf.len() + data.len();
        if needed > self.buf.capacity() {
            let target = (self.buf.capacity() * 2)
                .max(needed)
                .min(self.total_size as usize);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(data);
        self.next += 1;
        Ok(())
    }

    /// The payload, once every slice is in and the checksum matches.
    pub fn finish(self) -> Result<Vec<u8>, WireError> {
        if self.next != self.slice_count {
            return Err(WireError::Incomplete {
                received: self.buf.len() as u64,
                total: self.total_size,
            });
        }
        check_crc(self.checksum, &self.buf)?;
        Ok(self.buf)
    }
}

/// CRC-32 (IEEE 802.3, the zlib polynomial) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

fn put_common(frame: &mut Vec<u8>, kind: u8) {
    frame.extend_from_slice(&MAGIC);
    frame.push(VERSION);
    frame.push(kind);
}

/// Checks magic and version; returns the kind byte.
fn read_common(frame: &[u8]) -> Result<u8, WireError> {
    let Some(common) = frame.get(..COMMON_LEN) else {
        return Err(WireError::Truncated {
            what: "common header",
            len: frame.len(),
            need: COMMON_LEN,
        });
    };
    let found = [common[0], common[1], common[2], common[3]];
    if found != MAGIC {
        return Err(WireError::BadMagic { found });
    }
    if common[4] != VERSION {
        return Err(WireError::UnknownVersion(common[4]));
    }
    Ok(common[5])
}

/// Refuses a frame shorter than its header before anything is read or sliced from it.
fn check_len(frame: &[u8], need: usize, what: &'static str) -> Result<(), WireError> {
    if frame.len() < need {
        return Err(WireError::Truncated {
            what,
            len: frame.len(),
            need,
        });
    }
    Ok(())
}

fn read_u64(frame: &[u8], at: usize, need: usize, what: &'static str) -> Result<u64, WireError> {
    let bytes = frame.get(at..at + 8).ok_or(WireError::Truncated {
        what,
        len: frame.len(),
        need,
    })?;
    let mut out = [0u8; 8];
    out.copy_from_slice(bytes);
    Ok(u64::from_be_bytes(out))
}

fn read_u32(frame: &[u8], at: usize, need: usize, what: &'static str) -> Result<u32, WireError> {
    let bytes = frame.get(at..at + 4).ok_or(WireError::Truncated {
        what,
        len: frame.len(),
        need,
    })?;
    let mut out = [0u8; 4];
    out.copy_from_slice(bytes);
    Ok(u32::from_be_bytes(out))
}

fn check_crc(expected: u32, payload: &[u8]) -> Result<(), WireError> {
    let actual = crc32(payload);
    if actual != expected {
        return Err(WireError::Checksum { expected, actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn slice_names_round_trip_and_other_names_do_not_parse() {
        assert_eq!(parse_slice_name(&slice_name("w", 17)), Some(("w", 17)));
        assert_eq!(parse_slice_name("w"), None);
        assert_eq!(parse_slice_name("w__split__"), None);
        assert_eq!(parse_slice_name("w__split__x1"), None);
    }

    #[test]
    fn payload_at_the_threshold_is_inline_and_one_more_byte_splits() {
        let payload = vec![7u8; 100];
        let frames = encode_frames(&payload, 100).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].len(), INLINE_HEADER_LEN + 100);

        let payload = vec![7u8; 101];
        let frames = encode_frames(&payload, 100).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].len(), SLICE_HEADER_LEN + 100);
        assert_eq!(frames[2].len(), SLICE_HEADER_LEN + 1);
        assert!(frames.iter().all(|f| f.len() <= max_frame_len(100)));
        let Head::Split(mut r) = decode_head(&frames[0], 1000).unwrap() else {
            panic!("expected a split header")
        };
        assert_eq!((r.total_size(), r.slice_count()), (101, 2));
        for frame in &frames[1..] {
            r.push(frame).unwrap();
        }
        assert_eq!(r.next_slice(), None);
        assert_eq!(r.finish().unwrap(), payload);
    }

    #[test]
    fn slices_out_of_order_or_extra_are_refused() {
        let frames = encode_frames(&[1u8; 10], 4).unwrap();
        let Head::Split(mut r) = decode_head(&frames[0], 100).unwrap() else {
            panic!("expected a split header")
        };
        assert_eq!(
            r.push(&frames[2]),
            Err(WireError::SliceOrder {
                expected: 0,
                found: 1
            })
        );
        for frame in &frames[1..] {
            r.push(frame).unwrap();
        }
        assert_eq!(
            r.push(&frames[3]),
            Err(WireError::ExtraSlice {
                index: 2,
                slice_count: 3
            })
        );
    }

    /// A split header and a fresh reassembler for `frames` (made by `encode_frames`).
    fn reassembler(frames: &[Vec<u8>]) -> Reassembler {
        match decode_head(&frames[0], usize::MAX) {
            Ok(Head::Split(r)) => r,
            other => panic!("expected a split header, got {other:?}"),
        }
    }

    #[test]
    fn every_truncated_frame_is_an_error_naming_its_header() {
        // Issue #10: a 15-byte inline frame (longer than the fields read, shorter than the
        // header) used to panic on slicing the payload.
        let inline = &encode_frames(b"hello, federation", 1024).unwrap()[0];
        for n in 0..inline.len() {
            let result = decode_head(&inline[..n], usize::MAX);
            assert!(result.is_err(), "prefix of {n} bytes decoded: {result:?}");
        }
        assert_eq!(
            decode_head(&inline[..15], usize::MAX).unwrap_err(),
            WireError::Truncated {
                what: "inline header",
                len: 15,
                need: INLINE_HEADER_LEN
            }
        );
        let split = encode_frames(&[9u8; 10], 4).unwrap();
        for n in 0..split[0].len() {
            assert!(
                decode_head(&split[0][..n], usize::MAX).is_err(),
                "split prefix {n}"
            );
        }
        for n in 0..split[1].len() {
            let result = reassembler(&split).push(&split[1][..n]);
            assert!(result.is_err(), "slice prefix of {n} bytes accepted");
        }
        assert_eq!(
            reassembler(&split).push(&split[1][..SLICE_HEADER_LEN - 1]),
            Err(WireError::Truncated {
                what: "slice header",
                len: SLICE_HEADER_LEN - 1,
                need: SLICE_HEADER_LEN
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoder(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            kind in 0u8..4,
        ) {
            let _ = decode_head(&bytes, usize::MAX);
            let _ = decode_head(&bytes, 16);
            // The same bytes behind a valid common header reach the per-kind decoding.
            let mut framed = Vec::new();
            put_common(&mut framed, kind);
            framed.extend_from_slice(&bytes);
            let _ = decode_head(&framed, usize::MAX);
            let split = encode_frames(&[5u8; 10], 4).unwrap();
            let mut r = reassembler(&split);
            let _ = r.push(&bytes);
            let _ = r.push(&framed);
            let _ = r.finish();
        }
    }

    #[test]
    fn incomplete_reassembly_is_an_error() {
        let frames = encode_frames(&[1u8; 10], 4).unwrap();
        let Head::Split(mut r) = decode_head(&frames[0], 100).unwrap() else {
            panic!("expected a split header")
        };
        r.push(&frames[1]).unwrap();
        assert_eq!(
            r.finish(),
            Err(WireError::Incomplete {
                received: 4,
                total: 10
            })
        );
    }
}
