//! [`ObjectTableStore`]: a [`TableStore`] over OpenDAL (`file://`, `hdfs://`, `s3://`).
//!
//! Layout under the store's root, per table:
//! ```text
//! <ns>/<name>/g<gen>/part-00000.parquet ...   the partitions of generation <gen>
//! <ns>/<name>/_manifest-<gen>.json            the commit point of generation <gen>
//! ```
//! A table exists when it has a manifest; the manifest with the highest generation is the
//! table. `put` writes every partition of a new generation, then its manifest (on `file://` and
//! `hdfs://` written under a temporary name and renamed, so it appears whole; an S3 PUT is
//! atomic), then removes older manifests (oldest first) and every other generation. A failed
//! `put` removes what it wrote; a crash leaves at worst unreferenced files, which the next
//! `put` or `delete` of the table removes.

use crate::parquet_rows;
use crate::uri::{ConfigError, S3Settings, StorageUri};
use bytes::Bytes;
use fate_computing::{
    ComputingError, MAX_PARTITIONS, PARTITION_FORMAT_VERSION, StoredRow as Row, TableStore,
};
use opendal::{ErrorKind, Operator};
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Version of the manifest layout.
pub const MANIFEST_VERSION: u32 = 1;

/// Largest manifest read (a manifest of [`MAX_PARTITIONS`] partitions is about 3 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 8 << 20;

/// Default largest partition file read: a partition is loaded into memory whole.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 4 << 30;

/// Default bound of one storage call (a read, a write, a listing).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What an [`ObjectTableStore`] is opened with.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Where the tables live.
    pub uri: StorageUri,
    /// How to reach S3 (for `s3://` only).
    pub s3: S3Settings,
    /// Largest partition file read; larger files are refused before they are read.
    pub max_object_bytes: u64,
    /// Bound of each storage call; a call that takes longer fails naming its object.
    pub timeout: Duration,
}

impl StorageConfig {
    /// A configuration of `uri` with default limits and S3 settings from the environment.
    pub fn new(uri: StorageUri) -> StorageConfig {
        StorageConfig {
            uri,
            s3: S3Settings::default().with_env(|k| std::env::var(k).ok()),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One partition in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PartEntry {
    rows: u64,
    bytes: u64,
}

/// The commit record of one generation of a table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// [`MANIFEST_VERSION`].
    version: u32,
    /// Row encoding ([`PARTITION_FORMAT_VERSION`]).
    partition_format: u8,
    /// The generation: its partitions are under `g<generation>/`.
    generation: u64,
    /// `part-<index>.parquet`, in partition order.
    partitions: Vec<PartEntry>,
}

fn gen_dir(generation: u64) -> String {
    format!("g{generation:020}")
}

fn manifest_name(generation: u64) -> String {
    format!("_manifest-{generation:020}.json")
}

fn part_name(generation: u64, index: usize) -> String {
    format!("{}/part-{index:05}.parquet", gen_dir(generation))
}

/// The generation a manifest file name holds.
fn manifest_generation(file: &str) -> Option<u64> {
    let digits = file.strip_prefix("_manifest-")?.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn check_table_name(field: &'static str, value: &str) -> Result<(), ComputingError> {
    fate_types::ids::check_name(field, value).map_err(|_| {
        let mut shown: String = value.chars().take(64).collect();
        if shown.len() < value.len() {
            shown.push('…');
        }
        ComputingError::InvalidName {
            field,
            value: shown,
            reason: "must be 1 to 128 letters, digits, `_`, `-`, `.` or `@`, starting with a letter or digit",
        }
    })
}

fn check_table(namespace: &str, name: &str) -> Result<(), ComputingError> {
    check_table_name("namespace", namespace)?;
    check_table_name("name", name)
}

/// What the async operations share.
struct Core {
    op: Operator,
    uri: StorageUri,
    max_object_bytes: u64,
    timeout: Duration,
    /// Fault injection for tests: the write that brings this to zero fails (0 = off).
    #[cfg(feature = "testing")]
    fail_at: std::sync::atomic::AtomicUsize,
}

impl Core {
    fn backend(&self) -> &'static str {
        self.uri.scheme()
    }

    /// Runs one storage call with the store's timeout; errors name `what` (an operation and
    /// the full URI of its object).
    async fn call<T>(
        &self,
        what: impl Fn() -> String,
        fut: impl IntoFuture<Output = opendal::Result<T>>,
    ) -> Result<T, ComputingError> {
        match self.call_opt(&what, fut).await? {
            Some(v) => Ok(v),
            None => Err(ComputingError::Store {
                backend: self.backend(),
                op: what(),
                source: "not found".into(),
            }),
        }
    }

    /// Like [`Core::call`], with `None` for an object or directory that does not exist.
    async fn call_opt<T>(
        &self,
        what: &impl Fn() -> String,
        fut: impl IntoFuture<Output = opendal::Result<T>>,
    ) -> Result<Option<T>, ComputingError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(e)) if e.kind() == ErrorKind::NotFound => Ok(None),
            Ok(Err(e)) => Err(ComputingError::Store {
                backend: self.backend(),
                op: what(),
                source: Box::new(e),
            }),
            Err(_) => Err(ComputingError::Store {
                backend: self.backend(),
                op: what(),
                source: format!("no answer within {:?}", self.timeout).into(),
            }),
        }
    }

    fn table_dir(namespace: &str, name: &str) -> String {
        format!("{namespace}/{name}/")
    }

    fn uri_of(&self, path: &str) -> String {
        self.uri.join(path)
    }

    /// Entry names (without a trailing `/`) directly under `dir`; a missing directory is empty.
    async fn names_under(&self, dir: &str) -> Result<Vec<String>, ComputingError> {
        let what = || format!("list {}", self.uri_of(dir));
        let Some(entries) = self.call_opt(&what, self.op.list(dir)).await? else {
            return Ok(Vec::new());
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.path() != dir)
            .map(|e| e.name().trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .collect())
    }

    /// The manifest generations of a table, ascending.
    async fn generations(&self, namespace: &str, name: &str) -> Result<Vec<u64>, ComputingError> {
        let mut gens: Vec<u64> = self
            .names_under(&Self::table_dir(namespace, name))
            .await?
            .iter()
            .filter_map(|n| manifest_generation(n))
            .collect();
        gens.sort_unstable();
        Ok(gens)
    }

    /// Reads an object after checking its size against `limit` and, when known, the size the
    /// manifest recorded.
    async fn read_bounded(
        &self,
        path: &str,
        limit: u64,
        expected: Option<u64>,
    ) -> Result<Bytes, ComputingError> {
        let uri = self.uri_of(path);
        let what = || format!("look up {uri}");
        let Some(meta) = self.call_opt(&what, self.op.stat(path)).await? else {
            return Err(ComputingError::Corrupt {
                what: uri,
                reason: "missing (the table's manifest lists it)".into(),
            });
        };
        let size = meta.content_length();
        if size > limit {
            return Err(ComputingError::Corrupt {
                what: uri,
                reason: format!("{size} bytes, more than the {limit} this store reads"),
            });
        }
        if let Some(expected) = expected
            && size != expected
        {
            return Err(ComputingError::Corrupt {
                what: uri,
                reason: format!("{size} bytes, the manifest says {expected}"),
            });
        }
        let buf = self
            .call(|| format!("read {uri}"), self.op.read(path))
            .await?;
        if buf.len() as u64 != size {
            return Err(ComputingError::Corrupt {
                what: uri,
                reason: format!("read {} bytes of {size}", buf.len()),
            });
        }
        Ok(buf.to_bytes())
    }

    async fn read_manifest(
        &self,
        namespace: &str,
        name: &str,
        generation: u64,
    ) -> Result<Manifest, ComputingError> {
        let path = format!(
            "{}{}",
            Self::table_dir(namespace, name),
            manifest_name(generation)
        );
        let bytes = self.read_bounded(&path, MAX_MANIFEST_BYTES, None).await?;
        let corrupt = |reason: String| ComputingError::Corrupt {
            what: self.uri_of(&path),
            reason,
        };
        let m: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a manifest: {e}")))?;
        if m.version != MANIFEST_VERSION {
            return Err(ComputingError::UnsupportedVersion {
                what: self.uri_of(&path),
                found: m.version.min(255) as u8,
                expected: MANIFEST_VERSION as u8,
            });
        }
        if m.partition_format != PARTITION_FORMAT_VERSION {
            return Err(ComputingError::UnsupportedVersion {
                what: format!("rows of {}", self.uri_of(&path)),
                found: m.partition_format,
                expected: PARTITION_FORMAT_VERSION,
            });
        }
        if m.generation != generation {
            return Err(corrupt(format!("names generation {}", m.generation)));
        }
        if m.partitions.is_empty() || m.partitions.len() > MAX_PARTITIONS {
            return Err(corrupt(format!(
                "{} partitions, allowed 1..={MAX_PARTITIONS}",
                m.partitions.len()
            )));
        }
        Ok(m)
    }

    async fn write_object(&self, path: &str, bytes: Vec<u8>) -> Result<(), ComputingError> {
        let uri = self.uri_of(path);
        #[cfg(feature = "testing")]
        {
            use std::sync::atomic::Ordering;
            let armed = self
                .fail_at
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .unwrap_or(0);
            if armed == 1 {
                return Err(ComputingError::Store {
                    backend: self.backend(),
                    op: format!("write {uri}"),
                    source: "injected failure (test)".into(),
                });
            }
        }
        self.call(|| format!("write {uri}"), self.op.write(path, bytes))
            .await
            .map(|_| ())
    }

    /// Removes `path` (a directory with everything under it, or one object); failures are
    /// logged, not returned: what is left is unreferenced and removed by a later `put`.
    async fn remove_quietly(&self, path: &str) {
        let recursive = path.ends_with('/');
        let result = self
            .call(
                || format!("remove {}", self.uri_of(path)),
                self.op.delete_with(path).recursive(recursive),
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not remove an unreferenced table object");
        }
    }

    async fn put(
        &self,
        namespace: String,
        name: String,
        partitions: Vec<Vec<Row>>,
        overwrite: bool,
    ) -> Result<(), ComputingError> {
        let dir = Self::table_dir(&namespace, &name);
        let existing = self.generations(&namespace, &name).await?;
        if !existing.is_empty() && !overwrite {
            return Err(ComputingError::TableExists { namespace, name });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let generation = now.max(existing.last().map_or(0, |g| g + 1));
        let written = self.write_generation(&dir, generation, partitions).await;
        let gen_path = format!("{dir}{}/", gen_dir(generation));
        let manifest = match written {
            Ok(m) => m,
            Err(e) => {
                self.remove_quietly(&gen_path).await;
                return Err(e);
            }
        };
        if let Err(e) = self.commit(&dir, &manifest).await {
            self.remove_quietly(&gen_path).await;
            return Err(e);
        }
        self.sweep(&dir, generation).await;
        Ok(())
    }

    async fn write_generation(
        &self,
        dir: &str,
        generation: u64,
        partitions: Vec<Vec<Row>>,
    ) -> Result<Manifest, ComputingError> {
        let mut entries = Vec::with_capacity(partitions.len());
        for (i, rows) in partitions.into_iter().enumerate() {
            let path = format!("{dir}{}", part_name(generation, i));
            let file = parquet_rows::encode(&rows).map_err(|reason| ComputingError::Corrupt {
                what: self.uri_of(&path),
                reason: format!("could not encode the partition: {reason}"),
            })?;
            entries.push(PartEntry {
                rows: rows.len() as u64,
                bytes: file.len() as u64,
            });
            drop(rows);
            self.write_object(&path, file).await?;
        }
        Ok(Manifest {
            version: MANIFEST_VERSION,
            partition_format: PARTITION_FORMAT_VERSION,
            generation,
            partitions: entries,
        })
    }

    /// Makes `manifest` visible whole.
    async fn commit(&self, dir: &str, manifest: &Manifest) -> Result<(), ComputingError> {
        let body = serde_json::to_vec(manifest).map_err(|e| ComputingError::Store {
            backend: self.backend(),
            op: "encode a manifest".into(),
            source: Box::new(e),
        })?;
        let target = format!("{dir}{}", manifest_name(manifest.generation));
        match self.uri {
            // One PUT: S3 shows the object whole or not at all.
            StorageUri::S3 { .. } => self.write_object(&target, body).await,
            // A file appears while it is written: write it aside, then rename it (the target
            // name is new, so the rename never replaces anything).
            StorageUri::File { .. } | StorageUri::Hdfs { .. } => {
                let tmp = format!("{dir}_tmp-{:020}.json", manifest.generation);
                self.write_object(&tmp, body).await?;
                let renamed = self
                    .call(
                        || format!("rename {} to {}", self.uri_of(&tmp), self.uri_of(&target)),
                        self.op.rename(&tmp, &target),
                    )
                    .await;
                if renamed.is_err() {
                    self.remove_quietly(&tmp).await;
                }
                renamed
            }
        }
    }

    /// Removes every manifest older than `keep` (oldest first, so an interrupted sweep never
    /// leaves an older manifest as the newest), then every other entry of the table directory.
    async fn sweep(&self, dir: &str, keep: u64) {
        let names = match self.names_under(dir).await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "could not list a table to remove old generations");
                return;
            }
        };
        let mut old: Vec<u64> = names
            .iter()
            .filter_map(|n| manifest_generation(n))
            .filter(|g| *g < keep)
            .collect();
        old.sort_unstable();
        for g in old {
            self.remove_quietly(&format!("{dir}{}", manifest_name(g)))
                .await;
        }
        let (keep_dir, keep_manifest) = (gen_dir(keep), manifest_name(keep));
        for n in names {
            if n == keep_dir
                || n == keep_manifest
                || manifest_generation(&n).is_some_and(|g| g > keep)
            {
                continue;
            }
            if n.starts_with('g') && n.len() == 21 {
                self.remove_quietly(&format!("{dir}{n}/")).await;
            } else if n.starts_with("_tmp-") {
                self.remove_quietly(&format!("{dir}{n}")).await;
            }
        }
    }

    async fn get(
        &self,
        namespace: String,
        name: String,
    ) -> Result<Option<Vec<Vec<Row>>>, ComputingError> {
        let Some(&generation) = self.generations(&namespace, &name).await?.last() else {
            return Ok(None);
        };
        let manifest = self.read_manifest(&namespace, &name, generation).await?;
        let dir = Self::table_dir(&namespace, &name);
        let mut parts = Vec::with_capacity(manifest.partitions.len());
        for (i, entry) in manifest.partitions.iter().enumerate() {
            let path = format!("{dir}{}", part_name(generation, i));
            let file = self
                .read_bounded(&path, self.max_object_bytes, Some(entry.bytes))
                .await?;
            let rows = parquet_rows::decode(file, entry.rows).map_err(|reason| {
                ComputingError::Corrupt {
                    what: self.uri_of(&path),
                    reason,
                }
            })?;
            parts.push(rows);
        }
        Ok(Some(parts))
    }

    async fn delete(&self, namespace: String, name: String) -> Result<bool, ComputingError> {
        let dir = Self::table_dir(&namespace, &name);
        let gens = self.generations(&namespace, &name).await?;
        // Oldest first: an interrupted delete leaves the newest generation, never an older one.
        for g in &gens {
            let path = format!("{dir}{}", manifest_name(*g));
            self.call(
                || format!("remove {}", self.uri_of(&path)),
                self.op.delete(&path),
            )
            .await?;
        }
        self.remove_quietly(&dir).await;
        Ok(!gens.is_empty())
    }

    async fn list(&self) -> Result<Vec<(String, String, usize)>, ComputingError> {
        let mut out = Vec::new();
        let mut namespaces = self.names_under("").await?;
        namespaces.sort();
        for ns in namespaces {
            if check_table_name("namespace", &ns).is_err() {
                continue;
            }
            let mut names = self.names_under(&format!("{ns}/")).await?;
            names.sort();
            for name in names {
                if check_table_name("name", &name).is_err() {
                    continue;
                }
                if let Some(&g) = self.generations(&ns, &name).await?.last() {
                    let m = self.read_manifest(&ns, &name, g).await?;
                    out.push((ns.clone(), name, m.partitions.len()));
                }
            }
        }
        Ok(out)
    }
}

/// A [`TableStore`] of Parquet partitions and JSON manifests under a storage URI, through
/// OpenDAL. Its calls are synchronous: each runs on the store's own small tokio runtime and the
/// caller waits, so it works from rayon threads, plain threads and inside another tokio runtime
/// (from a blocking context there, e.g. `spawn_blocking`, as any blocking call).
pub struct ObjectTableStore {
    core: Arc<Core>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ObjectTableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectTableStore")
            .field("uri", &self.core.uri.to_string())
            .finish()
    }
}

/// The OpenDAL operator of `uri` (also for tests that need to reach the objects directly).
/// Build it inside the tokio runtime that will drive it (HDFS connections run there).
pub fn build_operator(uri: &StorageUri, s3: &S3Settings) -> Result<Operator, ConfigError> {
    install_transport();
    let failed = |e: opendal::Error| ConfigError {
        field: "storage",
        reason: format!("`{uri}`: {e}"),
    };
    let op = match uri {
        StorageUri::File { root } => {
            Operator::new(opendal::services::Fs::default().root(root)).map_err(failed)?
        }
        StorageUri::Hdfs { name_node, root } => Operator::new(
            opendal::services::HdfsNative::default()
                .name_node(&format!("hdfs://{name_node}"))
                .root(root),
        )
        .map_err(failed)?,
        StorageUri::S3 { bucket, prefix } => {
            s3.validate()?;
            let mut b = opendal::services::S3::default()
                .bucket(bucket)
                .root(&format!("/{prefix}"))
                .region(s3.region.as_deref().unwrap_or("us-east-1"))
                // Only the settings given here count: no ~/.aws files, no instance metadata.
                .disable_config_load();
            if let Some(e) = &s3.endpoint {
                b = b.endpoint(e);
            }
            if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                b = b.access_key_id(id).secret_access_key(secret);
            } else {
                b = b.skip_signature();
            }
            if let Some(t) = &s3.session_token {
                b = b.session_token(t);
            }
            if s3.virtual_host_style {
                b = b.enable_virtual_host_style();
            }
            Operator::new(b).map_err(failed)?
        }
    };
    Ok(op)
}

/// OpenDAL's HTTP transport (reqwest) with rustls on ring, installed once per process.
fn install_transport() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already, which reqwest then uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
    });
}

impl ObjectTableStore {
    /// Opens the store: builds the operator, starts the store's runtime and checks that the
    /// root can be listed (a missing bucket or an unreachable NameNode is an error naming the
    /// URI).
    pub fn open(config: StorageConfig) -> Result<Arc<ObjectTableStore>, ComputingError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fate-storage")
            .enable_all()
            .build()
            .map_err(|e| ComputingError::Store {
                backend: config.uri.scheme(),
                op: "start the storage runtime".into(),
                source: Box::new(e),
            })?;
        // Built inside the store's runtime: the HDFS client spawns its connection tasks on the
        // runtime current at build time, which must not be a caller's (possibly blocked) one.
        let op = {
            let _entered = runtime.enter();
            build_operator(&config.uri, &config.s3)
        }
        .map_err(|e| ComputingError::InvalidConfig {
            field: e.field,
            reason: e.reason,
        })?;
        let store = ObjectTableStore {
            core: Arc::new(Core {
                op,
                uri: config.uri,
                max_object_bytes: config.max_object_bytes,
                timeout: config.timeout,
                #[cfg(feature = "testing")]
                fail_at: std::sync::atomic::AtomicUsize::new(0),
            }),
            runtime: Some(runtime),
        };
        store.run(|core| async move {
            if !matches!(core.uri, StorageUri::S3 { .. }) {
                core.call(|| format!("create {}", core.uri), core.op.create_dir("/"))
                    .await?;
            }
            core.call(|| format!("list {}", core.uri), core.op.list("/"))
                .await
                .map(|_| ())
        })?;
        tracing::debug!(uri = %store.core.uri, "opened table store");
        Ok(Arc::new(store))
    }

    /// The store's URI.
    pub fn uri(&self) -> &StorageUri {
        &self.core.uri
    }

    /// Where table `namespace.name` lives: FATE's table `address` (the table's directory).
    pub fn address(&self, namespace: &str, name: &str) -> String {
        self.core.uri_of(&format!("{namespace}/{name}"))
    }

    /// Full URIs of the partition files of table `namespace.name` as committed now.
    pub fn partition_uris(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, ComputingError> {
        check_table(namespace, name)?;
        let (ns, n) = (namespace.to_string(), name.to_string());
        self.run(move |core| async move {
            let Some(&g) = core.generations(&ns, &n).await?.last() else {
                return Err(ComputingError::TableNotFound {
                    namespace: ns,
                    name: n,
                });
            };
            let m = core.read_manifest(&ns, &n, g).await?;
            let dir = Core::table_dir(&ns, &n);
            Ok((0..m.partitions.len())
                .map(|i| core.uri_of(&format!("{dir}{}", part_name(g, i))))
                .collect())
        })
    }

    /// Makes the `nth` (1-based) object write from now on fail once (tests of atomicity).
    #[cfg(feature = "testing")]
    pub fn fail_write(&self, nth: usize) {
        self.core
            .fail_at
            .store(nth, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs `f` on the store's runtime and waits for its answer.
    fn run<T, F, Fut>(&self, f: F) -> Result<T, ComputingError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Core>) -> Fut,
        Fut: Future<Output = Result<T, ComputingError>> + Send + 'static,
    {
        let core = Arc::clone(&self.core);
        let backend = core.backend();
        let fut = f(core);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().ok_or_else(|| ComputingError::Store {
            backend,
            op: "use the store".into(),
            source: "the store is closed".into(),
        })?;
        runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(ComputingError::Store {
                backend,
                op: "wait for a storage call".into(),
                source: "the call ended without an answer".into(),
            })
        })
    }
}

impl Drop for ObjectTableStore {
    fn drop(&mut self) {
        // Never blocks, so dropping the store inside another runtime is fine.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn count(namespace: &str, name: &str, n: usize) -> Result<(), ComputingError> {
    if (1..=MAX_PARTITIONS).contains(&n) {
        Ok(())
    } else {
        Err(ComputingError::Corrupt {
            what: format!("table {namespace}.{name}"),
            reason: format!("cannot store {n} partitions (allowed 1..={MAX_PARTITIONS})"),
        })
    }
}

impl TableStore for ObjectTableStore {
    fn put(
        &self,
        namespace: &str,
        name: &str,
        partitions: Vec<Vec<Row>>,
        overwrite: bool,
    ) -> Result<(), ComputingError> {
        check_table(namespace, name)?;
        count(namespace, name, partitions.len())?;
        let (ns, n) = (namespace.to_string(), name.to_string());
        self.run(move |core| async move { core.put(ns, n, partitions, overwrite).await })
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Option<Vec<Vec<Row>>>, ComputingError> {
        check_table(namespace, name)?;
        let (ns, n) = (namespace.to_string(), name.to_string());
        self.run(move |core| async move { core.get(ns, n).await })
    }

    fn delete(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        check_table(namespace, name)?;
        let (ns, n) = (namespace.to_string(), name.to_string());
        self.run(move |core| async move { core.delete(ns, n).await })
    }

    fn exists(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        check_table(namespace, name)?;
        let (ns, n) = (namespace.to_string(), name.to_string());
        self.run(move |core| async move { Ok(!core.generations(&ns, &n).await?.is_empty()) })
    }

    fn list(&self) -> Result<Vec<(String, String, usize)>, ComputingError> {
        self.run(|core| async move { core.list().await })
    }

    fn engine(&self) -> &'static str {
        self.core.uri.engine()
    }

    fn address(&self, namespace: &str, name: &str) -> String {
        ObjectTableStore::address(self, namespace, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_sort_as_numbers() {
        assert_eq!(manifest_generation(&manifest_name(42)), Some(42));
        assert_eq!(manifest_generation("_manifest-1.json"), None);
        assert_eq!(
            manifest_generation("_manifest-0000000000000000000x.json"),
            None
        );
        assert!(manifest_name(9) < manifest_name(10));
        assert_eq!(part_name(7, 3), "g00000000000000000007/part-00003.parquet");
    }
}
