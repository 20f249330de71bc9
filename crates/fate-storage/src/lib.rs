//! fate-storage: a table's partitions in a file system, HDFS or S3, through OpenDAL.
//!
//! A node's storage is a URI ([`StorageUri`]): `file:///abs/path`, `hdfs://host:port/path` or
//! `s3://bucket/prefix` (with [`S3Settings`]). [`ObjectTableStore`] implements
//! `fate_computing::TableStore` on it: one Parquet file (`key BINARY, value BINARY`) per
//! partition, so Spark reads a table directly, and a JSON manifest per table written last as
//! its commit point (see `store` for the protocol). Reads are bounded (manifest and partition
//! sizes checked before they are read) and errors name the full URI of the object.
//!
//! Credentials come from the node's configuration or the environment and are never logged
//! (`S3Settings`'s `Debug` redacts them).

mod parquet_rows;
mod store;
mod uri;

pub use store::{
    DEFAULT_MAX_OBJECT_BYTES, DEFAULT_TIMEOUT, MANIFEST_VERSION, MAX_MANIFEST_BYTES,
    ObjectTableStore, StorageConfig, build_operator,
};
pub use uri::{ConfigError, S3Settings, StorageUri};
