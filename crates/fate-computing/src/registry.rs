//! The kernel registry: kernel names to functions over encoded rows, generated from the kernel
//! types. An engine that holds encoded tables ([`crate::EncodedEngine`], Spark's executors)
//! looks every [`KernelCall`] up here. Registration is explicit (each crate that defines
//! kernels has a `register_kernels(&mut KernelRegistry)`), and a name registered twice is an
//! error, so one name always means one function.

use crate::engine::Row;
use crate::error::ComputingError;
use crate::kernel::{
    Combine, Filter, FlatMap, Fold, Kernel, KernelCall, MapPartition, MapRow, MapValues,
};
use crate::key::{Key, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A prepared rows kernel: partition index and its rows to output rows.
pub type RowsFn = Box<dyn Fn(usize, Vec<Row>) -> Result<Vec<Row>, ComputingError> + Send + Sync>;
/// A prepared `Combine` kernel over encoded values.
pub type CombineFn = Box<dyn Fn(&[u8], &[u8]) -> Result<Vec<u8>, ComputingError> + Send + Sync>;
/// A prepared `Fold` kernel: encoded values, folded left to right; `None` for none.
pub type FoldFn = Box<dyn Fn(Vec<&[u8]>) -> Result<Option<Vec<u8>>, ComputingError> + Send + Sync>;

type Prepare<F> = Arc<dyn Fn(&[u8]) -> Result<F, ComputingError> + Send + Sync>;

#[derive(Clone)]
enum Entry {
    Rows(Prepare<RowsFn>),
    Combine(Prepare<CombineFn>),
    Fold(Prepare<FoldFn>),
}

impl Entry {
    fn kind(&self) -> &'static str {
        match self {
            Entry::Rows(_) => "rows",
            Entry::Combine(_) => "combine",
            Entry::Fold(_) => "fold",
        }
    }
}

/// Kernel name to its function over encoded rows.
#[derive(Clone, Default)]
pub struct KernelRegistry {
    entries: BTreeMap<&'static str, Entry>,
}

impl std::fmt::Debug for KernelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

fn decode<T: DeserializeOwned>(
    kernel: &str,
    what: &str,
    bytes: &[u8],
) -> Result<T, ComputingError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(ComputingError::Kernel {
            name: kernel.to_string(),
            reason: format!("{} trailing bytes after a {what}", rest.len()),
        }),
        Err(e) => Err(ComputingError::Kernel {
            name: kernel.to_string(),
            reason: format!("could not decode a {what}: {e}"),
        }),
    }
}

fn encode<T: Serialize>(kernel: &str, what: &str, v: &T) -> Result<Vec<u8>, ComputingError> {
    postcard::to_allocvec(v).map_err(|e| ComputingError::Kernel {
        name: kernel.to_string(),
        reason: format!("could not encode a {what}: {e}"),
    })
}

/// Encodes a typed row.
pub(crate) fn encode_row<K: Key, V: Value>(
    kernel: &str,
    k: &K,
    v: &V,
) -> Result<Row, ComputingError> {
    Ok(Row {
        hash: k.partition_hash(),
        key: encode(kernel, "key", k)?,
        value: encode(kernel, "value", v)?,
    })
}

/// Decodes an encoded value.
pub(crate) fn decode_value<V: Value>(kernel: &str, bytes: &[u8]) -> Result<V, ComputingError> {
    decode(kernel, "value", bytes)
}

/// Decodes an encoded row.
pub(crate) fn decode_row<K: Key, V: Value>(
    kernel: &str,
    row: &Row,
) -> Result<(K, V), ComputingError> {
    Ok((
        decode(kernel, "key", &row.key)?,
        decode(kernel, "value", &row.value)?,
    ))
}

impl KernelRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.keys().copied().collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn insert(&mut self, name: &'static str, entry: Entry) -> Result<&mut Self, ComputingError> {
        if self.entries.contains_key(name) {
            return Err(ComputingError::DuplicateKernel {
                name: name.to_string(),
            });
        }
        self.entries.insert(name, entry);
        Ok(self)
    }

    fn rows<T: Kernel>(
        &mut self,
        run: impl Fn(&T, usize, Vec<Row>) -> Result<Vec<Row>, ComputingError>
        + Send
        + Sync
        + Copy
        + 'static,
    ) -> Result<&mut Self, ComputingError> {
        self.insert(
            T::NAME,
            Entry::Rows(Arc::new(move |params| {
                let k: T = KernelCall::decode(params)?;
                let f: RowsFn = Box::new(move |i, rows| run(&k, i, rows));
                Ok(f)
            })),
        )
    }

    /// Registers a [`MapValues`] kernel.
    pub fn map_values<T: MapValues>(&mut self) -> Result<&mut Self, ComputingError> {
        self.rows::<T>(|k, _, rows| {
            rows.into_iter()
                .map(|mut r| {
                    let v: T::In = decode(T::NAME, "value", &r.value)?;
                    r.value = encode(T::NAME, "value", &k.apply(&v))?;
                    Ok(r)
                })
                .collect()
        })
    }

    /// Registers a [`MapRow`] kernel.
    pub fn map<T: MapRow>(&mut self) -> Result<&mut Self, ComputingError> {
        self.rows::<T>(|k, _, rows| {
            rows.iter()
                .map(|r| {
                    let (a, b) = decode_row::<T::K, T::V>(T::NAME, r)?;
                    let (a2, b2) = k.apply(&a, &b);
                    encode_row(T::NAME, &a2, &b2)
                })
                .collect()
        })
    }

    /// Registers a [`FlatMap`] kernel.
    pub fn flat_map<T: FlatMap>(&mut self) -> Result<&mut Self, ComputingError> {
        self.rows::<T>(|k, _, rows| {
            let mut out = Vec::with_capacity(rows.len());
            let mut typed = Vec::new();
            for r in &rows {
                let (a, b) = decode_row::<T::K, T::V>(T::NAME, r)?;
                typed.clear();
                k.apply(&a, &b, &mut typed);
                for (a2, b2) in &typed {
                    out.push(encode_row(T::NAME, a2, b2)?);
                }
            }
            Ok(out)
        })
    }

    /// Registers a [`MapPartition`] kernel. The partition's rows are decoded and sorted by the
    /// typed key before the kernel sees them, as on the local engine.
    pub fn map_partitions<T: MapPartition>(&mut self) -> Result<&mut Self, ComputingError> {
        self.rows::<T>(|k, i, rows| {
            let mut typed = rows
                .iter()
                .map(|r| decode_row::<T::K, T::V>(T::NAME, r))
                .collect::<Result<Vec<_>, _>>()?;
            typed.sort_by(|a, b| a.0.cmp(&b.0));
            k.apply(i, &typed)
                .iter()
                .map(|(a, b)| encode_row(T::NAME, a, b))
                .collect()
        })
    }

    /// Registers a [`Filter`] kernel.
    pub fn filter<T: Filter>(&mut self) -> Result<&mut Self, ComputingError> {
        self.rows::<T>(|k, _, rows| {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let (a, b) = decode_row::<T::K, T::V>(T::NAME, &r)?;
                if k.keep(&a, &b) {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    /// Registers a [`Combine`] (join) kernel.
    pub fn combine<T: Combine>(&mut self) -> Result<&mut Self, ComputingError> {
        self.insert(
            T::NAME,
            Entry::Combine(Arc::new(|params| {
                let k: T = KernelCall::decode(params)?;
                let f: CombineFn = Box::new(move |a, b| {
                    let a: T::A = decode(T::NAME, "left value", a)?;
                    let b: T::B = decode(T::NAME, "right value", b)?;
                    encode(T::NAME, "value", &k.apply(&a, &b))
                });
                Ok(f)
            })),
        )
    }

    /// Registers a [`Fold`] kernel.
    pub fn fold<T: Fold>(&mut self) -> Result<&mut Self, ComputingError> {
        self.insert(
            T::NAME,
            Entry::Fold(Arc::new(|params| {
                let k: T = KernelCall::decode(params)?;
                let f: FoldFn = Box::new(move |values| {
                    let mut acc: Option<T::V> = None;
                    for v in values {
                        let v: T::V = decode(T::NAME, "value", v)?;
                        acc = Some(match acc {
                            None => v,
                            Some(a) => k.apply(a, v),
                        });
                    }
                    acc.map(|a| encode(T::NAME, "value", &a)).transpose()
                });
                Ok(f)
            })),
        )
    }

    fn entry(&self, call: &KernelCall) -> Result<&Entry, ComputingError> {
        self.entries
            .get(call.name.as_str())
            .ok_or_else(|| ComputingError::UnknownKernel {
                name: call.name.clone(),
            })
    }

    fn wrong_kind(call: &KernelCall, expected: &'static str, found: &Entry) -> ComputingError {
        ComputingError::Kernel {
            name: call.name.clone(),
            reason: format!("is a {} kernel, expected a {expected} kernel", found.kind()),
        }
    }

    /// The rows function of `call` (`MapValues`, `MapRow`, `FlatMap`, `MapPartition`, `Filter`).
    pub fn rows_fn(&self, call: &KernelCall) -> Result<RowsFn, ComputingError> {
        match self.entry(call)? {
            Entry::Rows(p) => p(&call.params),
            other => Err(Self::wrong_kind(call, "rows", other)),
        }
    }

    /// The combine function of `call`.
    pub fn combine_fn(&self, call: &KernelCall) -> Result<CombineFn, ComputingError> {
        match self.entry(call)? {
            Entry::Combine(p) => p(&call.params),
            other => Err(Self::wrong_kind(call, "combine", other)),
        }
    }

    /// The fold function of `call`.
    pub fn fold_fn(&self, call: &KernelCall) -> Result<FoldFn, ComputingError> {
        match self.entry(call)? {
            Entry::Fold(p) => p(&call.params),
            other => Err(Self::wrong_kind(call, "fold", other)),
        }
    }
}
