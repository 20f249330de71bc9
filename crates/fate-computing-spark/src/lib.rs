//! Spark as a fate-rs computing engine: a Spark Connect client (Spark 4.x, `sc://host:port`)
//! and the executor pipe that runs fate-rs kernels on Spark's executors.
//!
//! Pieces:
//! - [`SparkEngine`]: the `fate_computing::Engine` contract on Spark (tables as checkpointed
//!   DataFrames, kernels on the executors through [`engine_exec`]); see its module docs.
//! - [`SparkClient`] talks to a Spark Connect server: [`SparkClient::sql`] and
//!   [`SparkClient::create_dataframe`] give [`DataFrame`] plans; [`DataFrame::collect_rows`]
//!   (bounded by [`CollectLimits`]), [`DataFrame::count`], Parquet write/read, temp views,
//!   [`SparkClient::add_artifact`] (upload a file such as the executor binary) and
//!   [`SparkClient::set_config`]. Errors ([`SparkError`]) carry Spark's message and the
//!   server address.
//! - [`executor`]: the hidden `spark-executor` subcommand's loop. Spark's
//!   `SELECT TRANSFORM ... USING` starts it once per partition; it reads lines of batched
//!   records on stdin, runs a named kernel through a dispatch function the binary provides
//!   ([`executor::Dispatch`]) and writes batched lines on stdout. The line format is in
//!   [`lines`].
//! - [`table`]: tables as DataFrames of `(key BINARY, value BINARY)` rows and the operations
//!   over them: map kernels, join (by key in Spark, the value combiner as a kernel),
//!   reduce and reduce-by-key (kernel folds on each partition, then after a repartition),
//!   subtract-by-key.
//!
//! Why the code is generated here rather than taken from the `apache-spark-connect` crate:
//! that crate runs `protoc` in its build script (it needs `protoc` and `libprotobuf-dev` on
//! every build machine, which fate-rs machines lack) and brings a DataFrame API much larger
//! than the handful of plans fate-rs sends. The protobuf code in `generated.rs` is produced
//! once from the `.proto` files of Spark's own `spark-connect` jar (in `proto/`, copied from
//! the pyspark wheel) by `scripts/gen-spark-connect.sh` (protox + tonic-prost-build) and
//! committed, like `fate-federation-grpc`'s; building needs no protoc.
//!
//! Invariants:
//! - Nothing from a Spark response is buffered without a bound: collects stop with an error
//!   beyond [`CollectLimits`], gRPC messages are limited by `max_message_bytes`, and the
//!   executor refuses lines longer than [`lines::MAX_LINE_BYTES`].
//! - Kernel parameters (they may hold secrets) never appear in SQL text, plans, logs or
//!   command lines: they travel to the party's own cluster as a session artifact file that the
//!   executor reads (see [`table::KernelRunner`]).

mod arrow;
mod client;
mod engine;
pub mod engine_exec;
pub mod executor;
pub mod lines;
pub mod table;

pub use client::{CollectLimits, DataFrame, SparkClient, SparkError, SparkOptions};
pub use engine::{ExecutorSource, SparkEngine, SparkEngineConfig};

/// One table row as the engine contract encodes it: (postcard key, postcard value).
pub type Row = (Vec<u8>, Vec<u8>);

/// Spark Connect's `spark.connect` messages and the `SparkConnectService` client (generated
/// from `proto/spark/connect/*.proto`, see `scripts/gen-spark-connect.sh`).
#[allow(
    missing_docs,
    non_camel_case_types,
    clippy::all,
    clippy::pedantic,
    unused_qualifications,
    deprecated
)]
pub mod proto {
    include!("generated.rs");
}
