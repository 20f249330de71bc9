//! Kernels: the work components put on tables, as named, serialisable values.
//!
//! A kernel is a struct whose fields are what a closure would have captured (PSI's secret, a
//! seed, a column index) and whose trait method is the closure's body. The local engine calls
//! the method directly on typed partitions (no encoding); an engine that holds tables elsewhere
//! ([`crate::Engine`]) receives the kernel as a [`KernelCall`] (its [`Kernel::NAME`] and the
//! postcard encoding of its fields) and runs it through a [`crate::KernelRegistry`] over
//! encoded rows. So a kernel must behave the same whichever engine runs it: it may depend on
//! its fields and its inputs only, never on process state.
//!
//! Kernels that hold secrets keep them in a field of a type whose `Debug` redacts the value
//! (for example [`Secret`]), and [`KernelCall`]'s `Debug` shows only the name and the size of
//! the parameters: kernel parameters are never logged.

use crate::error::ComputingError;
use crate::key::{Key, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A named, serialisable unit of table work. `NAME` is unique across the kernels a
/// [`crate::KernelRegistry`] holds (registering a name twice is an error); by convention
/// `<crate>.<component>.<kernel>`.
pub trait Kernel: Serialize + DeserializeOwned + Send + Sync + 'static {
    const NAME: &'static str;
}

/// FATE `mapValues`: a value to a new value; keys and partitioning stay.
pub trait MapValues: Kernel {
    type In: Value;
    type Out: Value;
    fn apply(&self, v: &Self::In) -> Self::Out;
}

/// FATE `map`: a row to a new row; rows are shuffled by their new key.
pub trait MapRow: Kernel {
    type K: Key;
    type V: Value;
    type K2: Key;
    type V2: Value;
    fn apply(&self, k: &Self::K, v: &Self::V) -> (Self::K2, Self::V2);
}

/// FATE `flatMap`: a row to any number of rows (pushed on `out`), shuffled by key.
pub trait FlatMap: Kernel {
    type K: Key;
    type V: Value;
    type K2: Key;
    type V2: Value;
    fn apply(&self, k: &Self::K, v: &Self::V, out: &mut Vec<(Self::K2, Self::V2)>);
}

/// FATE `mapPartitions` / `mapPartitionsWithIndex`: a whole partition (its index and its rows
/// in key order) to rows, shuffled by key. Also the map side of `mapReducePartitions`.
pub trait MapPartition: Kernel {
    type K: Key;
    type V: Value;
    type K2: Key;
    type V2: Value;
    fn apply(&self, index: usize, rows: &[(Self::K, Self::V)]) -> Vec<(Self::K2, Self::V2)>;
}

/// FATE `filter`: whether a row stays.
pub trait Filter: Kernel {
    type K: Key;
    type V: Value;
    fn keep(&self, k: &Self::K, v: &Self::V) -> bool;
}

/// FATE `join`'s value combiner: the values of one key in both tables to the joined value.
pub trait Combine: Kernel {
    type A: Value;
    type B: Value;
    type Out: Value;
    fn apply(&self, a: &Self::A, b: &Self::B) -> Self::Out;
}

/// A binary fold of values: FATE `reduce`, the reduce side of `mapReducePartitions` and
/// `union`'s merge of a key in both tables. Should be associative (and commutative for a
/// result independent of partitioning and engine).
pub trait Fold: Kernel {
    type V: Value;
    fn apply(&self, a: Self::V, b: Self::V) -> Self::V;
}

/// A kernel as an engine receives it: its name and the postcard encoding of its fields.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCall {
    pub name: String,
    pub params: Vec<u8>,
}

impl std::fmt::Debug for KernelCall {
    /// The name and the size of the parameters only: parameters may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelCall({}, {} bytes)", self.name, self.params.len())
    }
}

impl KernelCall {
    /// The call of kernel `k`.
    pub fn of<T: Kernel>(k: &T) -> Result<KernelCall, ComputingError> {
        let params = postcard::to_allocvec(k).map_err(|e| ComputingError::Kernel {
            name: T::NAME.to_string(),
            reason: format!("could not encode the parameters: {e}"),
        })?;
        Ok(KernelCall {
            name: T::NAME.to_string(),
            params,
        })
    }

    /// Decodes the parameters as kernel `T` (every byte must be used).
    pub fn decode<T: Kernel>(params: &[u8]) -> Result<T, ComputingError> {
        match postcard::take_from_bytes::<T>(params) {
            Ok((k, [])) => Ok(k),
            Ok((_, rest)) => Err(ComputingError::Kernel {
                name: T::NAME.to_string(),
                reason: format!("{} trailing bytes after the parameters", rest.len()),
            }),
            Err(e) => Err(ComputingError::Kernel {
                name: T::NAME.to_string(),
                reason: format!("could not decode the parameters: {e}"),
            }),
        }
    }
}

/// Secret bytes a kernel needs (an ECDH scalar's seed, a private key's encoding): serialised as
/// a kernel parameter, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret<T>(pub T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Holds {
        key: Secret<[u8; 4]>,
    }
    impl Kernel for Holds {
        const NAME: &'static str = "test.holds";
    }

    #[test]
    fn calls_round_trip_and_never_show_parameters() {
        let call = KernelCall::of(&Holds {
            key: Secret([7, 7, 7, 7]),
        })
        .unwrap();
        let shown = format!("{call:?} {:?}", Secret([7u8; 4]));
        assert!(!shown.contains('7'), "{shown}");
        assert_eq!(
            KernelCall::decode::<Holds>(&call.params).unwrap().key.0,
            [7; 4]
        );
        let mut long = call.params.clone();
        long.push(0);
        let err = KernelCall::decode::<Holds>(&long).unwrap_err();
        assert!(err.to_string().contains("test.holds"), "{err}");
        assert!(KernelCall::decode::<Holds>(&call.params[..2]).is_err());
    }
}
