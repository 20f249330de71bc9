//! The Spark Connect client: a session on one server, plans built as `Relation`s, and the few
//! RPCs fate-rs needs (ExecutePlan, Config, AddArtifacts, ReleaseSession).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::Row;
use crate::arrow;
use crate::proto;
use crate::proto::spark_connect_service_client::SparkConnectServiceClient;

/// What the client accepts from the server when it collects a DataFrame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectLimits {
    /// At most this many rows; one more is an error (`SparkError::Limit`).
    pub max_rows: usize,
    /// At most this many bytes of Arrow data in total.
    pub max_bytes: usize,
}

impl Default for CollectLimits {
    fn default() -> Self {
        CollectLimits {
            max_rows: 10_000_000,
            max_bytes: 1 << 30,
        }
    }
}

/// How to open a session.
#[derive(Debug, Clone)]
pub struct SparkOptions {
    /// Spark Connect session id; Spark requires a UUID (`SparkOptions::random_session_id`).
    pub session_id: String,
    /// The user the session runs as (Spark's `UserContext.user_id`).
    pub user: String,
    /// The largest gRPC message accepted or sent (an Arrow batch, a LocalRelation chunk).
    pub max_message_bytes: usize,
    /// Default bounds of [`DataFrame::collect_rows`].
    pub collect: CollectLimits,
    /// Time allowed for the TCP connection to the server.
    pub connect_timeout: Duration,
}

impl SparkOptions {
    /// Options for a new session of `user` with a random session id.
    pub fn new(user: &str) -> SparkOptions {
        SparkOptions {
            session_id: random_session_id(),
            user: user.to_owned(),
            max_message_bytes: 128 << 20,
            collect: CollectLimits::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A random (version 4) UUID, the form Spark Connect requires of session ids.
pub fn random_session_id() -> String {
    let mut bytes = [0u8; 16];
    // std has no CSPRNG; the session id is an identifier, not a secret (Spark checks the user).
    let seed = std::collections::hash_map::RandomState::new();
    for (idx, chunk) in bytes.chunks_mut(8).enumerate() {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = seed.build_hasher();
        hasher.write_usize(idx);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An error talking to Spark; every kind names the server.
#[derive(Debug, thiserror::Error)]
pub enum SparkError {
    /// The URL or an argument is not acceptable.
    #[error("spark connect {address}: {message}")]
    Invalid { address: String, message: String },
    /// The server could not be reached.
    #[error("spark connect {address}: cannot connect: {message}")]
    Connect { address: String, message: String },
    /// Spark refused or failed the request; `message` is Spark's own.
    #[error("spark connect {address}: {message}")]
    Spark { address: String, message: String },
    /// A result went beyond the caller's bounds.
    #[error("spark connect {address}: {message}")]
    Limit { address: String, message: String },
    /// A response could not be decoded.
    #[error("spark connect {address}: bad response: {message}")]
    Decode { address: String, message: String },
}

impl SparkError {
    /// The message Spark (or the client) gave, without the address.
    pub fn message(&self) -> &str {
        match self {
            SparkError::Invalid { message, .. }
            | SparkError::Connect { message, .. }
            | SparkError::Spark { message, .. }
            | SparkError::Limit { message, .. }
            | SparkError::Decode { message, .. } => message,
        }
    }
}

struct Inner {
    address: String,
    options: SparkOptions,
    rpc: SparkConnectServiceClient<Channel>,
    next_name: AtomicU64,
}

/// A Spark Connect session. Cloning shares the session and its connection.
#[derive(Clone)]
pub struct SparkClient {
    inner: Arc<Inner>,
}

/// A DataFrame: a Spark Connect plan (`Relation`) of one session, evaluated when collected,
/// counted or written.
#[derive(Clone)]
pub struct DataFrame {
    client: SparkClient,
    relation: proto::Relation,
}

/// Parses `sc://host:port` (the Spark Connect URL form, without `;` parameters) into
/// `(host, port)`.
fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("sc://")
        .ok_or_else(|| format!("url {url:?} does not start with sc://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', ';', '?', '@']) {
        return Err(format!(
            "url {url:?}: only sc://host:port is supported (no path or parameters)"
        ));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("url {url:?} has no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("url {url:?}: port {port:?} is not a number"))?;
    if host.is_empty() {
        return Err(format!("url {url:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

impl SparkClient {
    /// Opens a session on the Spark Connect server at `url` (`sc://host:port`). The
    /// connection is made here, so an unreachable server is an error now.
    pub async fn connect(url: &str, options: SparkOptions) -> Result<SparkClient, SparkError> {
        let (host, port) = parse_url(url).map_err(|message| SparkError::Invalid {
            address: url.to_owned(),
            message,
        })?;
        let address = format!("{host}:{port}");
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| SparkError::Invalid {
                address: address.clone(),
                message: e.to_string(),
            })?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|e| SparkError::Connect {
            address: address.clone(),
            message: error_chain(&e),
        })?;
        let rpc = SparkConnectServiceClient::new(channel)
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        let client = SparkClient {
            inner: Arc::new(Inner {
                address,
                options,
                rpc,
                next_name: AtomicU64::new(0),
            }),
        };
        // Base64 in one line: the executor pipe needs single-line values (Spark 4 chunks
        // base64() output into 76-character lines by default).
        client
            .set_config(&[("spark.sql.chunkBase64String.enabled", "false")])
            .await?;
        Ok(client)
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.inner.options.session_id
    }

    /// A name unique in this session, for temp views and artifacts: `<prefix>_<n>`.
    pub fn unique_name(&self, prefix: &str) -> String {
        let n = self.inner.next_name.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_{n}")
    }

    fn user_context(&self) -> Option<proto::UserContext> {
        Some(proto::UserContext {
            user_id: self.inner.options.user.clone(),
            user_name: self.inner.options.user.clone(),
            extensions: Vec::new(),
        })
    }

    fn spark_error(&self, status: tonic::Status) -> SparkError {
        let mut message = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            status.message().to_owned()
        };
        // Client-side failures (a message over the limit, a dropped connection) say only
        // "transport error" at the top; the cause is in the source chain.
        if let Some(source) = std::error::Error::source(&status) {
            message.push_str(": ");
            message.push_str(&error_chain(source));
        }
        match status.code() {
            tonic::Code::Unavailable => SparkError::Connect {
                address: self.inner.address.clone(),
                message,
            },
            _ => SparkError::Spark {
                address: self.inner.address.clone(),
                message,
            },
        }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> SparkError {
        SparkError::Invalid {
            address: self.inner.address.clone(),
            message: message.into(),
        }
    }

    fn decode_error(&self, message: impl Into<String>) -> SparkError {
        SparkError::Decode {
            address: self.inner.address.clone(),
            message: message.into(),
        }
    }

    /// Sets session configuration (`spark.conf.set`).
    pub async fn set_config(&self, pairs: &[(&str, &str)]) -> Result<(), SparkError> {
        use proto::config_request::operation::OpType;
        let request = proto::ConfigRequest {
            session_id: self.inner.options.session_id.clone(),
            user_context: self.user_context(),
            operation: Some(proto::config_request::Operation {
                op_type: Some(OpType::Set(proto::config_request::Set {
                    pairs: pairs
                        .iter()
                        .map(|(key, value)| proto::KeyValue {
                            key: (*key).to_owned(),
                            value: Some((*value).to_owned()),
                        })
                        .collect(),
                    silent: None,
                })),
            }),
            ..Default::default()
        };
        let mut rpc = self.inner.rpc.clone();
        rpc.config(request)
            .await
            .map_err(|status| self.spark_error(status))?;
        Ok(())
    }

    /// A cheap round trip in the session (reads one config key): Spark Connect counts it as
    /// activity, so a session that is pinged does not expire while idle
    /// (`spark.connect.session.manager.defaultSessionTimeout`, 60 min by default).
    pub async fn ping(&self) -> Result<(), SparkError> {
        use proto::config_request::operation::OpType;
        let request = proto::ConfigRequest {
            session_id: self.inner.options.session_id.clone(),
            user_context: self.user_context(),
            operation: Some(proto::config_request::Operation {
                op_type: Some(OpType::GetOption(proto::config_request::GetOption {
                    keys: vec!["spark.app.name".to_owned()],
                })),
            }),
            ..Default::default()
        };
        let mut rpc = self.inner.rpc.clone();
        rpc.config(request)
            .await
            .map_err(|status| self.spark_error(status))?;
        Ok(())
    }

    /// Runs one config operation and returns the reply's pairs.
    async fn config_op(
        &self,
        op: proto::config_request::operation::OpType,
    ) -> Result<Vec<proto::KeyValue>, SparkError> {
        let request = proto::ConfigRequest {
            session_id: self.inner.options.session_id.clone(),
            user_context: self.user_context(),
            operation: Some(proto::config_request::Operation { op_type: Some(op) }),
            ..Default::default()
        };
        let mut rpc = self.inner.rpc.clone();
        let reply = rpc
            .config(request)
            .await
            .map_err(|status| self.spark_error(status))?;
        Ok(reply.into_inner().pairs)
    }

    /// Whether a session may change each of `keys` (`spark.conf.isModifiable`): runtime SQL
    /// settings yes; static ones and the cluster's (`spark.executor.memory`) no.
    pub async fn config_modifiable(&self, keys: &[String]) -> Result<Vec<bool>, SparkError> {
        use proto::config_request::operation::OpType;
        let pairs = self
            .config_op(OpType::IsModifiable(proto::config_request::IsModifiable {
                keys: keys.to_vec(),
            }))
            .await?;
        if pairs.len() != keys.len() {
            return Err(self.decode_error(format!(
                "isModifiable answered {} values for {} keys",
                pairs.len(),
                keys.len()
            )));
        }
        Ok(pairs
            .iter()
            .map(|kv| kv.value.as_deref() == Some("true"))
            .collect())
    }

    /// The session's values of `keys` (`spark.conf.getOption`), `None` where unset.
    pub async fn config_values(&self, keys: &[String]) -> Result<Vec<Option<String>>, SparkError> {
        use proto::config_request::operation::OpType;
        let pairs = self
            .config_op(OpType::GetOption(proto::config_request::GetOption {
                keys: keys.to_vec(),
            }))
            .await?;
        if pairs.len() != keys.len() {
            return Err(self.decode_error(format!(
                "getOption answered {} values for {} keys",
                pairs.len(),
                keys.len()
            )));
        }
        Ok(pairs.into_iter().map(|kv| kv.value).collect())
    }

    /// Uploads `data` as the session artifact `files/<name>`: Spark ships it to every
    /// executor, where it appears as `./<session dir>/<name>` in the task's working directory
    /// (found with [`crate::executor::find_artifact`]). Names are `[A-Za-z0-9._-]+`; Spark
    /// refuses to replace an artifact with different content, so use a fresh name per
    /// content.
    pub async fn add_artifact(&self, name: &str, data: &[u8]) -> Result<(), SparkError> {
        if !crate::lines::is_plain_name(name) {
            return Err(self.invalid(format!("artifact name {name:?} must be [A-Za-z0-9._-]+")));
        }
        self.upload(&format!("files/{name}"), data).await
    }

    /// Uploads one artifact under its full name (`files/...`, `cache/<sha-256>`).
    async fn upload(&self, full_name: &str, data: &[u8]) -> Result<(), SparkError> {
        use proto::add_artifacts_request::{
            ArtifactChunk, Batch, BeginChunkedArtifact, Payload, SingleChunkArtifact,
        };
        let full_name = full_name.to_owned();
        let chunk_bytes = (self.inner.options.max_message_bytes / 2).clamp(32 << 10, 4 << 20);
        let chunk = |bytes: &[u8]| ArtifactChunk {
            data: bytes.to_vec(),
            crc: i64::from(crc32fast::hash(bytes)),
        };
        let payloads: Vec<Payload> = if data.len() <= chunk_bytes {
            vec![Payload::Batch(Batch {
                artifacts: vec![SingleChunkArtifact {
                    name: full_name.clone(),
                    data: Some(chunk(data)),
                }],
            })]
        } else {
            let mut chunks = data.chunks(chunk_bytes);
            let first = chunks.next().map(chunk);
            let mut payloads = vec![Payload::BeginChunk(BeginChunkedArtifact {
                name: full_name.clone(),
                total_bytes: data.len() as i64,
                num_chunks: data.len().div_ceil(chunk_bytes) as i64,
                initial_chunk: first,
            })];
            payloads.extend(chunks.map(|bytes| Payload::Chunk(chunk(bytes))));
            payloads
        };
        let requests: Vec<proto::AddArtifactsRequest> = payloads
            .into_iter()
            .map(|payload| proto::AddArtifactsRequest {
                session_id: self.inner.options.session_id.clone(),
                user_context: self.user_context(),
                payload: Some(payload),
                ..Default::default()
            })
            .collect();
        let mut rpc = self.inner.rpc.clone();
        let response = rpc
            .add_artifacts(tokio_stream::iter(requests))
            .await
            .map_err(|status| self.spark_error(status))?
            .into_inner();
        match response.artifacts.iter().find(|a| a.name == full_name) {
            Some(summary) if summary.is_crc_successful => Ok(()),
            Some(_) => Err(self.decode_error(format!(
                "artifact {full_name}: the server's CRC check failed"
            ))),
            None => Err(self.decode_error(format!(
                "artifact {full_name}: the server did not acknowledge it"
            ))),
        }
    }

    /// A DataFrame of the SQL query (analysed when it runs, so a bad query is an error at
    /// collect/count/write).
    pub fn sql(&self, query: &str) -> DataFrame {
        self.dataframe(proto::relation::RelType::Sql(proto::Sql {
            query: query.to_owned(),
            ..Default::default()
        }))
    }

    /// A DataFrame reading the Parquet files at `path` (a directory Spark wrote, any
    /// filesystem URI Spark's Hadoop configuration understands).
    pub fn read_parquet(&self, path: &str) -> DataFrame {
        self.dataframe(proto::relation::RelType::Read(proto::Read {
            read_type: Some(proto::read::ReadType::DataSource(proto::read::DataSource {
                format: Some("parquet".to_owned()),
                paths: vec![path.to_owned()],
                ..Default::default()
            })),
            is_streaming: false,
        }))
    }

    /// A DataFrame `(key BINARY, value BINARY)` of local rows, sent as Arrow IPC
    /// `LocalRelation`s of at most an eighth of the message budget each. A relation that is
    /// not the only one is uploaded as a `cache/<sha-256>` artifact and referenced by a
    /// `CachedLocalRelation` (as Spark's own clients do for large data), so the plan itself
    /// stays small; the parts are joined by `UNION ALL`.
    pub async fn create_dataframe(&self, rows: &[Row]) -> Result<DataFrame, SparkError> {
        self.create_frame(rows, row_size, arrow::encode_rows, arrow::TABLE_DDL)
            .await
    }

    /// A DataFrame `(h BIGINT, key BINARY, value BINARY)` of engine rows (the key's hash as
    /// a signed BIGINT), sent as [`SparkClient::create_dataframe`] sends its rows.
    pub async fn create_engine_dataframe(
        &self,
        rows: &[&fate_computing::Row],
    ) -> Result<DataFrame, SparkError> {
        self.create_frame(
            rows,
            |r| r.key.len() + r.value.len() + 24,
            arrow::encode_engine_rows,
            arrow::ENGINE_TABLE_DDL,
        )
        .await
    }

    /// Rows in `LocalRelation`s of at most an eighth of the message budget each, encoded by
    /// `encode` as Arrow IPC of schema `ddl`.
    async fn create_frame<T>(
        &self,
        rows: &[T],
        size: impl Fn(&T) -> usize,
        encode: impl Fn(&[T]) -> Result<Vec<u8>, String>,
        ddl: &str,
    ) -> Result<DataFrame, SparkError> {
        let budget = (self.inner.options.max_message_bytes / 8).max(1024);
        let mut chunks: Vec<&[T]> = Vec::new();
        let mut start = 0;
        loop {
            let mut end = start;
            let mut bytes = 0usize;
            while end < rows.len() && (end == start || bytes + size(&rows[end]) <= budget) {
                bytes += size(&rows[end]);
                end += 1;
            }
            chunks.push(&rows[start..end]);
            start = end;
            if start >= rows.len() {
                break;
            }
        }
        let cached = chunks.len() > 1;
        let mut parts: Vec<DataFrame> = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let data = encode(chunk)
                .map_err(|message| self.invalid(format!("encoding rows: {message}")))?;
            let local = proto::LocalRelation {
                data: Some(data),
                schema: Some(ddl.to_owned()),
            };
            let rel_type = if cached {
                use prost::Message as _;
                use sha2::Digest as _;
                let bytes = local.encode_to_vec();
                let hash: String = sha2::Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                self.upload(&format!("cache/{hash}"), &bytes).await?;
                proto::relation::RelType::CachedLocalRelation(proto::CachedLocalRelation { hash })
            } else {
                proto::relation::RelType::LocalRelation(local)
            };
            parts.push(self.dataframe(rel_type));
        }
        let mut parts = parts.into_iter();
        let first = parts.next().expect("at least one part");
        Ok(parts.fold(first, |acc, part| acc.union_all(&part)))
    }

    /// The DataFrame of a relation cached on the server ([`DataFrame::local_checkpoint`]).
    pub fn cached(&self, relation_id: &str) -> DataFrame {
        self.dataframe(proto::relation::RelType::CachedRemoteRelation(
            proto::CachedRemoteRelation {
                relation_id: relation_id.to_owned(),
            },
        ))
    }

    /// Frees a relation cached on the server.
    pub async fn remove_cached(&self, relation_id: &str) -> Result<(), SparkError> {
        self.run_command(
            proto::command::CommandType::RemoveCachedRemoteRelationCommand(
                proto::RemoveCachedRemoteRelationCommand {
                    relation: Some(proto::CachedRemoteRelation {
                        relation_id: relation_id.to_owned(),
                    }),
                },
            ),
        )
        .await
    }

    fn dataframe(&self, rel_type: proto::relation::RelType) -> DataFrame {
        DataFrame {
            client: self.clone(),
            relation: proto::Relation {
                common: None,
                rel_type: Some(rel_type),
            },
        }
    }

    /// Runs a plan and hands each response to `on_response`, until the stream ends.
    async fn execute(
        &self,
        op_type: proto::plan::OpType,
        mut on_response: impl FnMut(proto::ExecutePlanResponse) -> Result<(), SparkError>,
    ) -> Result<(), SparkError> {
        let request = proto::ExecutePlanRequest {
            session_id: self.inner.options.session_id.clone(),
            user_context: self.user_context(),
            plan: Some(proto::Plan {
                op_type: Some(op_type),
            }),
            client_type: Some("fate-rs".to_owned()),
            ..Default::default()
        };
        let mut rpc = self.inner.rpc.clone();
        let mut stream = rpc
            .execute_plan(request)
            .await
            .map_err(|status| self.spark_error(status))?
            .into_inner();
        while let Some(response) = stream
            .message()
            .await
            .map_err(|status| self.spark_error(status))?
        {
            on_response(response)?;
        }
        Ok(())
    }

    async fn run_command(&self, command: proto::command::CommandType) -> Result<(), SparkError> {
        self.execute(
            proto::plan::OpType::Command(proto::Command {
                command_type: Some(command),
            }),
            |_| Ok(()),
        )
        .await
    }

    /// Ends the session on the server (its temp views, cached data and artifacts).
    pub async fn release(&self) -> Result<(), SparkError> {
        let request = proto::ReleaseSessionRequest {
            session_id: self.inner.options.session_id.clone(),
            user_context: self.user_context(),
            ..Default::default()
        };
        let mut rpc = self.inner.rpc.clone();
        rpc.release_session(request)
            .await
            .map_err(|status| self.spark_error(status))?;
        Ok(())
    }
}

fn row_size(row: &Row) -> usize {
    row.0.len() + row.1.len() + 16
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

impl DataFrame {
    /// The session this DataFrame belongs to.
    pub fn client(&self) -> &SparkClient {
        &self.client
    }

    fn wrap(&self, rel_type: proto::relation::RelType) -> DataFrame {
        self.client.dataframe(rel_type)
    }

    /// `self UNION ALL other` (by position).
    pub fn union_all(&self, other: &DataFrame) -> DataFrame {
        self.wrap(proto::relation::RelType::SetOp(Box::new(
            proto::SetOperation {
                left_input: Some(Box::new(self.relation.clone())),
                right_input: Some(Box::new(other.relation.clone())),
                set_op_type: proto::set_operation::SetOpType::Union as i32,
                is_all: Some(true),
                by_name: Some(false),
                allow_missing_columns: Some(false),
            },
        )))
    }

    /// The first `n` rows.
    pub fn limit(&self, n: i32) -> DataFrame {
        self.wrap(proto::relation::RelType::Limit(Box::new(proto::Limit {
            input: Some(Box::new(self.relation.clone())),
            limit: n,
        })))
    }

    /// Registers this DataFrame as the session temp view `name` (replacing one of that
    /// name), so SQL can refer to it.
    pub async fn create_temp_view(&self, name: &str) -> Result<(), SparkError> {
        if !crate::lines::is_sql_identifier(name) {
            return Err(self
                .client
                .invalid(format!("view name {name:?} must be [A-Za-z_][A-Za-z0-9_]*")));
        }
        self.client
            .run_command(proto::command::CommandType::CreateDataframeView(
                proto::CreateDataFrameViewCommand {
                    input: Some(self.relation.clone()),
                    name: name.to_owned(),
                    is_global: false,
                    replace: true,
                },
            ))
            .await
    }

    /// Registers this DataFrame under a fresh temp view name and returns the name.
    pub async fn to_view(&self) -> Result<String, SparkError> {
        let name = self.client.unique_name("fate_view");
        self.create_temp_view(&name).await?;
        Ok(name)
    }

    /// Runs the plan and returns its Arrow record batches, within `limits`. The plan is
    /// wrapped in `LIMIT max_rows + 1` so the server stops early when it is too large.
    pub async fn collect_batches(
        &self,
        limits: CollectLimits,
    ) -> Result<Vec<arrow_array::RecordBatch>, SparkError> {
        let limit = i32::try_from(limits.max_rows.saturating_add(1)).unwrap_or(i32::MAX);
        let relation = self.limit(limit).relation;
        let client = &self.client;
        let mut batches = Vec::new();
        let (mut n_rows, mut n_bytes) = (0usize, 0usize);
        client
            .execute(proto::plan::OpType::Root(relation), |response| {
                let Some(proto::execute_plan_response::ResponseType::ArrowBatch(batch)) =
                    response.response_type
                else {
                    return Ok(());
                };
                n_bytes = n_bytes.saturating_add(batch.data.len());
                n_rows = n_rows.saturating_add(usize::try_from(batch.row_count).unwrap_or(0));
                if n_rows > limits.max_rows || n_bytes > limits.max_bytes {
                    return Err(SparkError::Limit {
                        address: client.address().to_owned(),
                        message: format!(
                            "collect: the result exceeds the limit of {} rows / {} bytes",
                            limits.max_rows, limits.max_bytes
                        ),
                    });
                }
                batches.extend(
                    arrow::decode_batches(&batch.data)
                        .map_err(|message| client.decode_error(message))?,
                );
                Ok(())
            })
            .await?;
        Ok(batches)
    }

    /// Runs the plan and returns its rows; the first two columns must be binary
    /// `(key, value)`. Bounded by the session's default [`CollectLimits`].
    pub async fn collect_rows(&self) -> Result<Vec<Row>, SparkError> {
        self.collect_rows_within(self.client.inner.options.collect)
            .await
    }

    /// [`DataFrame::collect_rows`] with explicit bounds.
    pub async fn collect_rows_within(&self, limits: CollectLimits) -> Result<Vec<Row>, SparkError> {
        let batches = self.collect_batches(limits).await?;
        let mut rows = Vec::new();
        for batch in &batches {
            arrow::append_rows(batch, &mut rows)
                .map_err(|message| self.client.decode_error(message))?;
        }
        Ok(rows)
    }

    /// Runs the plan now and keeps its result on the executors (Spark's eager
    /// `localCheckpoint`, memory and disk), cutting the lineage; returns the cached
    /// relation's id (see [`SparkClient::cached`] and [`SparkClient::remove_cached`]).
    pub async fn local_checkpoint(&self) -> Result<String, SparkError> {
        let mut id = None;
        self.client
            .execute(
                proto::plan::OpType::Command(proto::Command {
                    command_type: Some(proto::command::CommandType::CheckpointCommand(
                        proto::CheckpointCommand {
                            relation: Some(self.relation.clone()),
                            local: true,
                            eager: true,
                            storage_level: Some(proto::StorageLevel {
                                use_disk: true,
                                use_memory: true,
                                use_off_heap: false,
                                deserialized: false,
                                replication: 1,
                            }),
                        },
                    )),
                }),
                |response| {
                    if let Some(
                        proto::execute_plan_response::ResponseType::CheckpointCommandResult(result),
                    ) = response.response_type
                    {
                        id = result.relation.map(|r| r.relation_id);
                    }
                    Ok(())
                },
            )
            .await?;
        id.ok_or_else(|| {
            self.client
                .decode_error("checkpoint: the server returned no cached relation")
        })
    }

    /// The number of rows (`count(*)` on the server).
    pub async fn count(&self) -> Result<u64, SparkError> {
        use proto::expression::{ExprType, Literal, UnresolvedFunction, literal::LiteralType};
        let one = proto::Expression {
            expr_type: Some(ExprType::Literal(Literal {
                literal_type: Some(LiteralType::Integer(1)),
                ..Default::default()
            })),
            ..Default::default()
        };
        let count = proto::Expression {
            expr_type: Some(ExprType::UnresolvedFunction(UnresolvedFunction {
                function_name: "count".to_owned(),
                arguments: vec![one],
                ..Default::default()
            })),
            ..Default::default()
        };
        let aggregate = self.wrap(proto::relation::RelType::Aggregate(Box::new(
            proto::Aggregate {
                input: Some(Box::new(self.relation.clone())),
                group_type: proto::aggregate::GroupType::Groupby as i32,
                aggregate_expressions: vec![count],
                ..Default::default()
            },
        )));
        let batches = aggregate
            .collect_batches(CollectLimits {
                max_rows: 1,
                max_bytes: 1 << 20,
            })
            .await?;
        let n = arrow::single_i64(&batches).map_err(|m| self.client.decode_error(m))?;
        u64::try_from(n).map_err(|_| self.client.decode_error(format!("negative count {n}")))
    }

    /// Writes the DataFrame as Parquet at `path`, replacing what is there.
    pub async fn write_parquet(&self, path: &str) -> Result<(), SparkError> {
        self.client
            .run_command(proto::command::CommandType::WriteOperation(
                proto::WriteOperation {
                    input: Some(self.relation.clone()),
                    source: Some("parquet".to_owned()),
                    mode: proto::write_operation::SaveMode::Overwrite as i32,
                    save_type: Some(proto::write_operation::SaveType::Path(path.to_owned())),
                    options: HashMap::new(),
                    ..Default::default()
                },
            ))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_sc_host_port_only() {
        assert_eq!(
            parse_url("sc://127.0.0.1:15002").unwrap(),
            ("127.0.0.1".to_owned(), 15002)
        );
        assert_eq!(
            parse_url("sc://spark.example:1/").unwrap(),
            ("spark.example".to_owned(), 1)
        );
        for bad in [
            "http://h:1",
            "sc://h",
            "sc://:1",
            "sc://h:x",
            "sc://h:1/;token=abc",
            "sc://h:99999",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn session_ids_are_distinct_v4_uuids() {
        let a = random_session_id();
        let b = random_session_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(a.split('-').map(str::len).eq([8, 4, 4, 4, 12]));
    }
}
