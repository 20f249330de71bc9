//! The crate's one error type. Every variant names the thing that is wrong so a caller can turn it
//! into a message that points at the offending party, field or value.

/// Errors of the crypto engine. None of them is a bug: each one is caused by an argument, a key or
/// a peer's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A Paillier key size other than the supported ones was asked for.
    #[error("unsupported Paillier key size {bits} bits (supported: 1024, 2048, 3072)")]
    UnsupportedKeySize { bits: u32 },

    /// The primes or values given for a key do not form a valid Paillier key.
    #[error("invalid Paillier key: {reason}")]
    InvalidKey { reason: String },

    /// A plaintext integer is outside the range the key can encrypt.
    #[error("plaintext {what} out of range: it needs |m| < n ({key_bits}-bit key)")]
    PlaintextOutOfRange { what: &'static str, key_bits: u32 },

    /// A fixed-point value does not fit (on encoding), or a decrypted value lies in the band that
    /// only wrap-around can produce (on decoding).
    #[error("fixed-point overflow in {what}: {detail}")]
    Overflow { what: &'static str, detail: String },

    /// A value that cannot be encoded at all (NaN, infinity).
    #[error("cannot encode {what}: {detail}")]
    NotEncodable { what: &'static str, detail: String },

    /// Bytes from a peer (or from storage) that do not decode.
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },

    /// Two inputs whose sizes must agree do not.
    #[error("dimension mismatch in {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },

    /// A ciphertext has no inverse modulo n^2, so it cannot be negated. Only a value that is not
    /// a valid ciphertext of this key can cause it.
    #[error("ciphertext in {what} is not invertible modulo n^2 (not a ciphertext of this key)")]
    NotInvertible { what: &'static str },

    /// An argument outside its documented domain.
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    /// A Diffie-Hellman exchange with a peer key that yields no shared secret (a low-order point).
    #[error("key agreement with party rank {rank} failed: {reason}")]
    KeyAgreement { rank: u32, reason: String },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn decode(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Decode {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_key(reason: impl Into<String>) -> Self {
        Error::InvalidKey {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_argument(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}
