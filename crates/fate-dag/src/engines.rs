//! Per-job engine settings: which computing, storage and federation engine each party of a job
//! uses, and the Spark run settings of a party on Spark (FATE 1.x `job_parameters.common` /
//! `job_parameters.role.<role>.<idx>`: `computing_engine`, `storage_engine`,
//! `federation_engine`, `spark_run`; fate-spec §3.2).
//!
//! Where they sit in a 2.x DAG (the 1.x converter writes them there):
//! * job-wide: `dag.conf.computing_engine`, `dag.conf.storage_engine`,
//!   `dag.conf.federation_engine` (FATE 1.x's names: FATE 2.2 takes the engines from the node's
//!   `service_conf` only, so these are fate-rs extensions kept in `JobConfSpec::extra`), and
//!   `dag.conf.task.engine_run` (FATE 2.2's name for the run settings of the engine; on Spark
//!   the same keys as 1.x `spark_run`);
//! * per party: the same keys in `dag.party_tasks.<alias>.conf`, applied to the parties of
//!   that entry in alias order, each key replacing the job-wide one (`engine_run` entries
//!   replace the job-wide entries of the same name; its `conf` map merges key by key).
//!
//! Settings are per job and party, not per task. Values are FATE's spellings, case-insensitive.
//! What this module checks is the shape (known names, types, bounds); whether a node can
//! honour a setting (a Spark Connect server configured, a conf key Spark lets a session set)
//! is the node's check when the job is created there. Every error names the field it came
//! from.

use crate::error::{PlanError, PlanErrorKind as K};
use crate::spec::DagSchema;
use fate_types::{BrokerCompression, BrokerRun, Party};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The computing engines a job may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputingEngine {
    /// FATE's `STANDALONE` (also `LOCAL`): the node's own process.
    Standalone,
    /// FATE's `SPARK`: the node's Spark cluster, through Spark Connect.
    Spark,
}

/// The storage engines a job may ask for: the kind of table store the node must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageEngine {
    /// FATE's `STANDALONE`: the node's own table store under its data dir.
    Standalone,
    /// FATE's `LOCALFS` (also `FILE`): a `file://` storage URI.
    Localfs,
    /// FATE's `HDFS`: an `hdfs://` storage URI.
    Hdfs,
    /// `S3`: an `s3://` storage URI.
    S3,
}

/// The federation engines a job may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FederationEngine {
    /// FATE's `STANDALONE`: every party in one process.
    Standalone,
    /// FATE's `EGGROLL` / `ROLLSITE` federation: rollsite's protocol between site routers.
    Rollsite,
    /// FATE 2.x `OSX`: the same routers.
    Osx,
    /// FATE's `RABBITMQ` (fate-spec §2.7): data through the parties' brokers.
    Rabbitmq,
    /// FATE's `PULSAR` (fate-spec §2.6): data through the parties' Pulsar brokers.
    Pulsar,
}

/// One setting and the dotted field of the job definition it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting<T> {
    pub value: T,
    pub field: String,
}

/// The `spark-submit` options `spark_run` may hold besides `conf`, with the Spark property
/// each one sets. Anything else is refused: FATE passes every key to `spark-submit` as
/// `--<key>`, and a typo there would otherwise be ignored silently.
pub const SPARK_RUN_KEYS: [(&str, &str); 9] = [
    ("master", "spark.master"),
    ("deploy-mode", "spark.submit.deployMode"),
    ("num-executors", "spark.executor.instances"),
    ("executor-cores", "spark.executor.cores"),
    ("executor-memory", "spark.executor.memory"),
    ("total-executor-cores", "spark.cores.max"),
    ("driver-cores", "spark.driver.cores"),
    ("driver-memory", "spark.driver.memory"),
    ("queue", "spark.yarn.queue"),
];

/// Most `spark_run.conf` entries one party may give.
pub const MAX_SPARK_CONF_ENTRIES: usize = 256;
/// Longest `spark_run` key or value, in bytes.
pub const MAX_SPARK_VALUE_LEN: usize = 4096;

/// A party's Spark run settings: each as the Spark property it sets, with its text value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkRun {
    /// `spark_run` options other than `conf`, keyed by the Spark property
    /// ([`SPARK_RUN_KEYS`]): `spark.executor.instances` for `num-executors`.
    pub options: BTreeMap<String, Setting<String>>,
    /// `spark_run.conf`, keyed by property.
    pub conf: BTreeMap<String, Setting<String>>,
}

impl SparkRun {
    /// Every property with its value and field, options first.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &Setting<String>)> {
        self.options
            .iter()
            .chain(&self.conf)
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn is_empty(&self) -> bool {
        self.options.is_empty() && self.conf.is_empty()
    }
}

/// What a job says about one party's engines; `None` where it says nothing (the node's
/// default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computing_engine: Option<Setting<ComputingEngine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_engine: Option<Setting<StorageEngine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_engine: Option<Setting<FederationEngine>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark_run: Option<SparkRun>,
    /// FATE's `rabbitmq_run`: options for a node federating through RabbitMQ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_run: Option<BrokerRun>,
    /// FATE's `pulsar_run`: options for a node federating through Pulsar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_run: Option<BrokerRun>,
}

impl EngineSettings {
    pub fn is_empty(&self) -> bool {
        self.computing_engine.is_none()
            && self.storage_engine.is_none()
            && self.federation_engine.is_none()
            && self.spark_run.is_none()
            && self.rabbitmq_run.is_none()
            && self.pulsar_run.is_none()
    }

    /// The broker options the job gives a node federating through `transport` (a
    /// `Transport::name`: `rabbitmq` or `pulsar`); none for other transports, which FATE
    /// likewise ignores them on.
    pub fn broker_run(&self, transport: &str) -> Option<&BrokerRun> {
        match transport {
            "rabbitmq" => self.rabbitmq_run.as_ref(),
            "pulsar" => self.pulsar_run.as_ref(),
            _ => None,
        }
    }

    /// `other` over `self`: its engines replace these, its Spark options and conf entries
    /// replace the ones of the same name.
    pub fn overlay(&mut self, other: EngineSettings) {
        if other.computing_engine.is_some() {
            self.computing_engine = other.computing_engine;
        }
        if other.storage_engine.is_some() {
            self.storage_engine = other.storage_engine;
        }
        if other.federation_engine.is_some() {
            self.federation_engine = other.federation_engine;
        }
        if let Some(run) = other.spark_run {
            let mine = self.spark_run.get_or_insert_with(SparkRun::default);
            mine.options.extend(run.options);
            mine.conf.extend(run.conf);
        }
        for (mine, theirs) in [
            (&mut self.rabbitmq_run, other.rabbitmq_run),
            (&mut self.pulsar_run, other.pulsar_run),
        ] {
            if let Some(run) = theirs {
                mine.get_or_insert_with(BrokerRun::default).overlay(&run);
            }
        }
    }
}

/// The keys of FATE's broker run options in a conf map.
pub const BROKER_RUN_KEYS: [&str; 2] = ["rabbitmq_run", "pulsar_run"];

/// The largest `max_message_size` a job may set: a slice and its header must fit in one
/// broker message (Pulsar's default `maxMessageSize` is 5 MiB).
pub const MAX_BROKER_MESSAGE_SIZE: usize = 4 << 20;

/// The smallest `max_message_size` a job may set (smaller slices would multiply messages
/// without bound).
pub const MIN_BROKER_MESSAGE_SIZE: usize = 1 << 10;

fn whole(v: &Value, field: &str, min: u64, max: u64, unit: &str) -> Result<u64, PlanError> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(PlanError::job(
            K::BadValue,
            field,
            format!("expected a whole number of {unit} from {min} to {max}, got {v}"),
        )),
    }
}

fn object_of<'a>(
    v: &'a Value,
    field: &str,
    what: &str,
) -> Result<&'a Map<String, Value>, PlanError> {
    v.as_object().ok_or_else(|| {
        PlanError::job(
            K::BadValue,
            field,
            format!("expected an object of {what}, got {}", kind(v)),
        )
    })
}

fn unknown_option(field: &str, known: &str) -> PlanError {
    PlanError::job(
        K::BadValue,
        field,
        format!("fate-rs does not take this option (it takes {known})"),
    )
}

/// FATE's `rabbitmq_run` (`key` `rabbitmq_run`) or `pulsar_run` (fate-spec §2.6, §2.7): the
/// options fate-rs's transports honour, each bounded; any other key is refused naming it
/// (FATE's Python clients refuse an unknown keyword too, later and less clearly).
pub fn broker_run(v: &Value, field: &str, key: &str) -> Result<BrokerRun, PlanError> {
    let top = object_of(v, field, "broker options")?;
    let mut out = BrokerRun::default();
    let pulsar = key == "pulsar_run";
    for (k, value) in top {
        let f = format!("{field}.{k}");
        if value.is_null() {
            continue;
        }
        match (k.as_str(), pulsar) {
            ("max_message_size", _) => {
                out.max_message_size = Some(whole(
                    value,
                    &f,
                    MIN_BROKER_MESSAGE_SIZE as u64,
                    MAX_BROKER_MESSAGE_SIZE as u64,
                    "bytes",
                )? as usize);
            }
            ("connection", false) => {
                for (ck, cv) in object_of(value, &f, "connection options")? {
                    let cf = format!("{f}.{ck}");
                    match ck.as_str() {
                        "heartbeat" => {
                            out.heartbeat_secs = Some(whole(cv, &cf, 0, 3600, "seconds")? as u16)
                        }
                        _ => return Err(unknown_option(&cf, "`heartbeat`")),
                    }
                }
            }
            ("queue", false) => {
                for (qk, qv) in object_of(value, &f, "queue options")? {
                    let qf = format!("{f}.{qk}");
                    match (qk.as_str(), qv) {
                        // fate-rs's queues are always durable: a broker restarted mid-job keeps
                        // the job's frames.
                        ("durable", Value::Bool(true)) => {}
                        ("durable", _) => {
                            return Err(PlanError::job(
                                K::BadValue,
                                qf,
                                "queues are always durable in fate-rs (a broker restarted \
                                 mid-job keeps the job's frames); only `true` is accepted",
                            ));
                        }
                        _ => return Err(unknown_option(&qf, "`durable`")),
                    }
                }
            }
            ("producer", true) => {
                for (pk, pv) in object_of(value, &f, "producer options")? {
                    let pf = format!("{f}.{pk}");
                    match pk.as_str() {
                        "compression_type" => {
                            let name = pv.as_str().map(|s| s.trim().to_ascii_uppercase());
                            out.compression = Some(match name.as_deref() {
                                Some("NONE") => BrokerCompression::None,
                                Some("LZ4") => BrokerCompression::Lz4,
                                Some("ZLIB") => BrokerCompression::Zlib,
                                Some("ZSTD") => BrokerCompression::Zstd,
                                Some("SNAPPY") => BrokerCompression::Snappy,
                                _ => {
                                    return Err(PlanError::job(
                                        K::BadValue,
                                        pf,
                                        format!(
                                            "expected NONE, LZ4, ZLIB, ZSTD or SNAPPY, got {pv}"
                                        ),
                                    ));
                                }
                            });
                        }
                        "max_pending_messages" => {
                            out.max_pending_messages =
                                Some(whole(pv, &pf, 1, 100_000, "messages")? as u32);
                        }
                        _ => {
                            return Err(unknown_option(
                                &pf,
                                "`compression_type` and `max_pending_messages`",
                            ));
                        }
                    }
                }
            }
            ("topic_ttl", true) => {
                out.topic_ttl_minutes = Some(whole(value, &f, 1, 7 * 24 * 60, "minutes")? as u32);
            }
            (_, false) => {
                return Err(unknown_option(
                    &f,
                    "`max_message_size`, `connection.heartbeat` and `queue.durable`",
                ));
            }
            (_, true) => {
                return Err(unknown_option(
                    &f,
                    "`max_message_size`, `producer.compression_type`, \
                     `producer.max_pending_messages` and `topic_ttl`",
                ));
            }
        }
    }
    Ok(out)
}

/// The keys of a conf map this module reads, and the key of the Spark run settings there.
pub const ENGINE_KEYS: [&str; 3] = ["computing_engine", "storage_engine", "federation_engine"];

/// Reads the engine settings of one conf map (`dag.conf`, a party conf, or a 1.x
/// `job_parameters` entry). `prefix` is the map's dotted field; `run_key` names the Spark run
/// settings in it (`engine_run` in a 2.x task conf, `spark_run` in 1.x) and `run_prefix` the
/// field of that value.
pub fn read_settings(
    map: &Map<String, Value>,
    prefix: &str,
    run: Option<(&Value, &str)>,
) -> Result<EngineSettings, PlanError> {
    let field = |k: &str| format!("{prefix}.{k}");
    let mut out = EngineSettings::default();
    if let Some(v) = present(map, "computing_engine") {
        let f = field("computing_engine");
        out.computing_engine = Some(Setting {
            value: computing_engine(v, &f)?,
            field: f,
        });
    }
    if let Some(v) = present(map, "storage_engine") {
        let f = field("storage_engine");
        out.storage_engine = Some(Setting {
            value: storage_engine(v, &f)?,
            field: f,
        });
    }
    if let Some(v) = present(map, "federation_engine") {
        let f = field("federation_engine");
        out.federation_engine = Some(Setting {
            value: federation_engine(v, &f)?,
            field: f,
        });
    }
    if let Some((v, f)) = run.filter(|(v, _)| !v.is_null()) {
        out.spark_run = Some(spark_run(v, f)?);
    }
    if let Some(v) = present(map, "rabbitmq_run") {
        out.rabbitmq_run = Some(broker_run(v, &field("rabbitmq_run"), "rabbitmq_run")?);
    }
    if let Some(v) = present(map, "pulsar_run") {
        out.pulsar_run = Some(broker_run(v, &field("pulsar_run"), "pulsar_run")?);
    }
    Ok(out)
}

fn present<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn name<'a>(v: &'a Value, field: &str, what: &str) -> Result<&'a str, PlanError> {
    v.as_str().ok_or_else(|| {
        PlanError::job(
            K::BadValue,
            field,
            format!("expected the name of a {what} engine, got {v}"),
        )
    })
}

fn shown(s: &str) -> String {
    let mut t: String = s.chars().take(64).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// FATE's computing engine names, case-insensitive: `STANDALONE`/`LOCAL`, `SPARK`; `EGGROLL`
/// is refused with what to use instead.
pub fn computing_engine(v: &Value, field: &str) -> Result<ComputingEngine, PlanError> {
    let s = name(v, field, "computing")?;
    match s.trim().to_ascii_uppercase().as_str() {
        "STANDALONE" | "LOCAL" => Ok(ComputingEngine::Standalone),
        "SPARK" => Ok(ComputingEngine::Spark),
        "EGGROLL" => Err(PlanError::job(
            K::BadValue,
            field,
            "EGGROLL is not supported by fate-rs, use STANDALONE or SPARK",
        )),
        _ => Err(PlanError::job(
            K::BadValue,
            field,
            format!(
                "`{}` is not a computing engine (expected STANDALONE or SPARK)",
                shown(s)
            ),
        )),
    }
}

/// FATE's storage engine names, case-insensitive: `STANDALONE`, `LOCALFS`/`FILE`, `HDFS`, and
/// `S3`.
pub fn storage_engine(v: &Value, field: &str) -> Result<StorageEngine, PlanError> {
    let s = name(v, field, "storage")?;
    match s.trim().to_ascii_uppercase().as_str() {
        "STANDALONE" => Ok(StorageEngine::Standalone),
        "LOCALFS" | "FILE" => Ok(StorageEngine::Localfs),
        "HDFS" => Ok(StorageEngine::Hdfs),
        "S3" => Ok(StorageEngine::S3),
        "EGGROLL" | "HIVE" | "LINKIS_HIVE" | "MYSQL" | "PATH" | "API" => Err(PlanError::job(
            K::BadValue,
            field,
            format!(
                "{} is not supported by fate-rs, use STANDALONE, LOCALFS, HDFS or S3",
                s.trim().to_ascii_uppercase()
            ),
        )),
        _ => Err(PlanError::job(
            K::BadValue,
            field,
            format!(
                "`{}` is not a storage engine (expected STANDALONE, LOCALFS, HDFS or S3)",
                shown(s)
            ),
        )),
    }
}

/// FATE's federation engine names, case-insensitive: `STANDALONE`, `EGGROLL`/`ROLLSITE`,
/// `OSX`, `RABBITMQ`, `PULSAR`.
pub fn federation_engine(v: &Value, field: &str) -> Result<FederationEngine, PlanError> {
    let s = name(v, field, "federation")?;
    match s.trim().to_ascii_uppercase().as_str() {
        "STANDALONE" => Ok(FederationEngine::Standalone),
        "EGGROLL" | "ROLLSITE" => Ok(FederationEngine::Rollsite),
        "OSX" => Ok(FederationEngine::Osx),
        "RABBITMQ" => Ok(FederationEngine::Rabbitmq),
        "PULSAR" => Ok(FederationEngine::Pulsar),
        _ => Err(PlanError::job(
            K::BadValue,
            field,
            format!(
                "`{}` is not a federation engine (expected STANDALONE, EGGROLL, OSX, RABBITMQ or \
                 PULSAR)",
                shown(s)
            ),
        )),
    }
}

/// A scalar as text (`4`, `"4g"`, `true`); anything else is an error naming `field`.
fn scalar(v: &Value, field: &str) -> Result<String, PlanError> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => {
            return Err(PlanError::job(
                K::BadValue,
                field,
                format!("expected a string, number or boolean, got {}", kind(v)),
            ));
        }
    };
    if s.is_empty() || s.len() > MAX_SPARK_VALUE_LEN || s.chars().any(char::is_control) {
        return Err(PlanError::job(
            K::BadValue,
            field,
            format!("must be 1 to {MAX_SPARK_VALUE_LEN} bytes without control characters"),
        ));
    }
    Ok(s)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn positive_count(v: &Value, field: &str) -> Result<String, PlanError> {
    let s = scalar(v, field)?;
    match s.parse::<u32>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n.to_string()),
        _ => Err(PlanError::job(
            K::BadValue,
            field,
            format!("expected a positive whole number, got {v}"),
        )),
    }
}

/// Spark's memory sizes: digits and an optional unit `k`, `m`, `g`, `t` (`b` allowed after).
fn memory(v: &Value, field: &str) -> Result<String, PlanError> {
    let s = scalar(v, field)?;
    let lower = s.to_ascii_lowercase();
    let digits = lower.trim_end_matches(['k', 'm', 'g', 't', 'p', 'b']);
    let unit = &lower[digits.len()..];
    let ok = !digits.is_empty()
        && digits.len() <= 12
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            unit,
            "" | "b" | "k" | "kb" | "m" | "mb" | "g" | "gb" | "t" | "tb" | "p" | "pb"
        );
    if ok {
        Ok(lower)
    } else {
        Err(PlanError::job(
            K::BadValue,
            field,
            format!("expected a memory size such as 4g or 512m, got {v}"),
        ))
    }
}

/// `spark_run` (1.x) / `engine_run` (2.x) of a party on Spark.
pub fn spark_run(v: &Value, field: &str) -> Result<SparkRun, PlanError> {
    let Value::Object(m) = v else {
        return Err(PlanError::job(
            K::BadValue,
            field,
            format!(
                "expected an object of spark-submit options and `conf`, got {}",
                kind(v)
            ),
        ));
    };
    let mut out = SparkRun::default();
    for (key, value) in m {
        let f = format!("{field}.{key}");
        if value.is_null() {
            continue;
        }
        if key == "conf" {
            let Value::Object(conf) = value else {
                return Err(PlanError::job(
                    K::BadValue,
                    f,
                    format!(
                        "expected an object of Spark properties, got {}",
                        kind(value)
                    ),
                ));
            };
            if conf.len() > MAX_SPARK_CONF_ENTRIES {
                return Err(PlanError::job(
                    K::BadValue,
                    f,
                    format!(
                        "{} entries, more than the limit of {MAX_SPARK_CONF_ENTRIES}",
                        conf.len()
                    ),
                ));
            }
            for (prop, pv) in conf {
                let pf = format!("{f}.{prop}");
                let plain = prop.len() <= 256
                    && prop.starts_with("spark.")
                    && prop
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !plain {
                    return Err(PlanError::job(
                        K::BadValue,
                        pf,
                        "a Spark property is `spark.` followed by letters, digits, `.`, `_` or `-`",
                    ));
                }
                out.conf.insert(
                    prop.clone(),
                    Setting {
                        value: scalar(pv, &pf)?,
                        field: pf,
                    },
                );
            }
            continue;
        }
        let Some((_, prop)) = SPARK_RUN_KEYS.iter().find(|(k, _)| *k == key) else {
            let known: Vec<&str> = SPARK_RUN_KEYS.iter().map(|(k, _)| *k).collect();
            return Err(PlanError::job(
                K::BadValue,
                f,
                format!(
                    "`{}` is not a spark_run option (expected {}, conf)",
                    shown(key),
                    known.join(", ")
                ),
            ));
        };
        let text = match key.as_str() {
            "num-executors" | "executor-cores" | "total-executor-cores" | "driver-cores" => {
                positive_count(value, &f)?
            }
            "executor-memory" | "driver-memory" => memory(value, &f)?,
            "deploy-mode" => {
                let s = scalar(value, &f)?;
                if s != "client" {
                    return Err(PlanError::job(
                        K::BadValue,
                        f,
                        format!(
                            "`{}` is not supported: a Spark Connect session runs its driver \
                             in the server (deploy-mode client)",
                            shown(&s)
                        ),
                    ));
                }
                s
            }
            _ => {
                if !value.is_string() {
                    return Err(PlanError::job(
                        K::BadValue,
                        f,
                        format!("expected a string, got {}", kind(value)),
                    ));
                }
                scalar(value, &f)?
            }
        };
        out.options.insert(
            prop.to_string(),
            Setting {
                value: text,
                field: f,
            },
        );
    }
    Ok(out)
}

/// The engine settings of a 2.x conf map (`dag.conf` or a party conf) at `prefix`: the engine
/// keys of the map and its `engine_run` (`task.engine_run` in `dag.conf`).
fn settings_of_conf(
    map: &Map<String, Value>,
    prefix: &str,
    run: Option<&Value>,
    run_field: &str,
) -> Result<EngineSettings, PlanError> {
    read_settings(map, prefix, run.map(|v| (v, run_field)))
}

/// Every party's engine settings as the DAG states them; parties it says nothing about are
/// left out. `parties_of_alias` gives the parties of each `party_tasks` entry (validated by
/// the planner).
pub(crate) fn job_engines(
    dag: &DagSchema,
    parties: &[Party],
    parties_of_alias: &BTreeMap<&str, Vec<Party>>,
) -> Result<BTreeMap<Party, EngineSettings>, PlanError> {
    let spec = &dag.dag;
    let mut job = EngineSettings::default();
    if let Some(conf) = &spec.conf {
        let run = conf
            .task
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|t| t.get("engine_run"));
        job = settings_of_conf(&conf.extra, "dag.conf", run, "dag.conf.task.engine_run")?;
    }
    let mut per_party: BTreeMap<Party, EngineSettings> = BTreeMap::new();
    for (alias, pt) in &spec.party_tasks {
        let Some(conf) = pt.conf.as_ref().and_then(Value::as_object) else {
            continue;
        };
        let prefix = format!("dag.party_tasks.{alias}.conf");
        let s = settings_of_conf(
            conf,
            &prefix,
            conf.get("engine_run"),
            &format!("{prefix}.engine_run"),
        )?;
        if s.is_empty() {
            continue;
        }
        for party in parties_of_alias.get(alias.as_str()).into_iter().flatten() {
            per_party
                .entry(party.clone())
                .or_insert_with(|| job.clone())
                .overlay(s.clone());
        }
    }
    let mut out = BTreeMap::new();
    let named: BTreeSet<&Party> = per_party.keys().collect();
    for party in parties {
        if !named.contains(party) && !job.is_empty() {
            out.insert(party.clone(), job.clone());
        }
    }
    out.extend(per_party);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(r: Result<impl std::fmt::Debug, PlanError>) -> PlanError {
        r.expect_err("expected an error")
    }

    #[test]
    fn fate_spellings_are_accepted_in_any_case() {
        let f = "f";
        assert_eq!(
            computing_engine(&json!("STANDALONE"), f).unwrap(),
            ComputingEngine::Standalone
        );
        assert_eq!(
            computing_engine(&json!("local"), f).unwrap(),
            ComputingEngine::Standalone
        );
        assert_eq!(
            computing_engine(&json!("Spark"), f).unwrap(),
            ComputingEngine::Spark
        );
        assert_eq!(
            storage_engine(&json!("hdfs"), f).unwrap(),
            StorageEngine::Hdfs
        );
        assert_eq!(
            storage_engine(&json!("LOCALFS"), f).unwrap(),
            StorageEngine::Localfs
        );
        assert_eq!(
            federation_engine(&json!("eggroll"), f).unwrap(),
            FederationEngine::Rollsite
        );
    }

    #[test]
    fn bad_engines_name_the_field() {
        let e = err(computing_engine(&json!("EGGROLL"), "a.b.computing_engine"));
        assert_eq!(e.field, "a.b.computing_engine");
        assert!(
            e.message
                .contains("not supported by fate-rs, use STANDALONE or SPARK"),
            "{e}"
        );
        let e = err(computing_engine(&json!("flink"), "x"));
        assert!(
            e.message.contains("`flink` is not a computing engine"),
            "{e}"
        );
        let e = err(computing_engine(&json!(3), "x"));
        assert!(e.message.contains("expected the name"), "{e}");
        let e = err(storage_engine(&json!("MYSQL"), "s"));
        assert!(e.message.contains("MYSQL is not supported"), "{e}");
        let e = err(federation_engine(&json!("kafka"), "fe"));
        assert_eq!(e.field, "fe");
        assert!(
            e.message.contains("`kafka` is not a federation engine"),
            "{e}"
        );
        assert_eq!(
            federation_engine(&json!("pulsar"), "fe").unwrap(),
            FederationEngine::Pulsar
        );
        assert_eq!(
            federation_engine(&json!("RabbitMQ"), "fe").unwrap(),
            FederationEngine::Rabbitmq
        );
    }

    #[test]
    fn spark_run_maps_options_to_properties_and_checks_types() {
        let run = spark_run(
            &json!({"num-executors": 2, "executor-cores": "1", "executor-memory": "4G",
                    "master": "local[2]", "conf": {"spark.sql.shuffle.partitions": 4,
                    "spark.sql.ansi.enabled": true}}),
            "r",
        )
        .unwrap();
        assert_eq!(run.options["spark.executor.instances"].value, "2");
        assert_eq!(run.options["spark.executor.cores"].value, "1");
        assert_eq!(run.options["spark.executor.memory"].value, "4g");
        assert_eq!(
            run.options["spark.executor.memory"].field,
            "r.executor-memory"
        );
        assert_eq!(run.options["spark.master"].value, "local[2]");
        assert_eq!(run.conf["spark.sql.shuffle.partitions"].value, "4");
        assert_eq!(
            run.conf["spark.sql.ansi.enabled"].field,
            "r.conf.spark.sql.ansi.enabled"
        );

        for (v, field, words) in [
            (json!("4"), "r", "expected an object"),
            (json!([1]), "r", "expected an object"),
            (
                json!({"num-executors": "two"}),
                "r.num-executors",
                "positive whole",
            ),
            (
                json!({"num-executors": 0}),
                "r.num-executors",
                "positive whole",
            ),
            (
                json!({"executor-cores": {"a": 1}}),
                "r.executor-cores",
                "expected a string",
            ),
            (
                json!({"executor-memory": "lots"}),
                "r.executor-memory",
                "memory size",
            ),
            (json!({"master": 3}), "r.master", "expected a string"),
            (
                json!({"deploy-mode": "cluster"}),
                "r.deploy-mode",
                "deploy-mode client",
            ),
            (
                json!({"num-executor": 2}),
                "r.num-executor",
                "not a spark_run option",
            ),
            (json!({"conf": "x"}), "r.conf", "expected an object"),
            (
                json!({"conf": {"spark.a": [1]}}),
                "r.conf.spark.a",
                "expected a string",
            ),
            (
                json!({"conf": {"hadoop.x": "1"}}),
                "r.conf.hadoop.x",
                "Spark property",
            ),
        ] {
            let e = err(spark_run(&v, "r"));
            assert_eq!(e.field, field, "{v}: {e}");
            assert!(e.message.contains(words), "{v}: {e}");
        }
    }

    #[test]
    fn party_settings_overlay_the_job_settings() {
        let mut job = read_settings(
            json!({"computing_engine": "SPARK"}).as_object().unwrap(),
            "c",
            Some((
                &json!({"num-executors": 2, "conf": {"spark.sql.a": "1"}}),
                "c.run",
            )),
        )
        .unwrap();
        let party = read_settings(
            json!({"storage_engine": "HDFS"}).as_object().unwrap(),
            "p",
            Some((&json!({"conf": {"spark.sql.b": "2"}}), "p.run")),
        )
        .unwrap();
        job.overlay(party);
        assert_eq!(job.computing_engine.unwrap().value, ComputingEngine::Spark);
        assert_eq!(job.storage_engine.unwrap().field, "p.storage_engine");
        let run = job.spark_run.unwrap();
        assert_eq!(run.options.len(), 1);
        assert_eq!(run.conf.len(), 2);
        assert_eq!(run.conf["spark.sql.b"].field, "p.run.conf.spark.sql.b");
    }
}
