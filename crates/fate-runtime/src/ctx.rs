//! One party's view of one running task.

use crate::data::{DataFrame, Schema};
use crate::registry::ComponentError;
use fate_computing::Computing;
use fate_federation::{CancelToken, Federation};
use fate_types::{Party, Role};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// An input artifact, resolved by the scheduler before the task starts.
#[derive(Debug, Clone)]
pub enum InputArtifact {
    /// A stored table and its schema (an upstream task's output or an uploaded table).
    Data {
        namespace: String,
        name: String,
        schema: Schema,
        /// The task that wrote it (FATE's `artifact.metadata.source.task_name`), `None` for a
        /// table read from the data warehouse.
        source_task: Option<String>,
    },
    /// A model JSON (an upstream task's output or one from the model warehouse).
    Model(serde_json::Value),
}

/// A data output the component wrote. The scheduler records its metadata after the task ends.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputData {
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub count: usize,
    pub partitions: usize,
    pub schema: Schema,
    /// True for tables a user named (upload), false for a task's output artifact.
    pub user_table: bool,
    /// True for a stored table the task only passes on (`reader`): its metadata (source,
    /// create time, count) stays as it is.
    pub existing: bool,
}

/// What a component produced: data tables, models and metrics, kept in memory until the
/// scheduler persists them.
#[derive(Debug, Default)]
pub struct RecordedOutputs {
    pub data: Vec<OutputData>,
    pub models: Vec<(String, serde_json::Value)>,
    pub metrics: Vec<(String, String, serde_json::Value)>,
}

/// Sink a component records outputs into.
#[derive(Debug, Default)]
pub struct Outputs {
    inner: Mutex<RecordedOutputs>,
}

impl Outputs {
    pub fn take(&self) -> RecordedOutputs {
        std::mem::take(&mut *self.inner.lock())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

/// A task's log at one party: every line goes to the task's log file (read back through
/// `/v2/log/query` and `fate job logs`) and to `tracing` with the job id, party and task.
pub struct TaskLog {
    job_id: String,
    party: Party,
    task_name: String,
    file: Option<Mutex<std::fs::File>>,
}

impl TaskLog {
    /// Opens (appends to) the log file at `path`; `None` logs to tracing only.
    pub fn new(
        job_id: &str,
        party: &Party,
        task_name: &str,
        path: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Some(Mutex::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?,
                ))
            }
            None => None,
        };
        Ok(TaskLog {
            job_id: job_id.to_string(),
            party: party.clone(),
            task_name: task_name.to_string(),
            file,
        })
    }

    pub fn log(&self, level: LogLevel, msg: &str) {
        let (job_id, party, task) = (&self.job_id, &self.party, &self.task_name);
        match level {
            LogLevel::Debug => tracing::debug!(job_id, %party, task, "{msg}"),
            LogLevel::Info => tracing::info!(job_id, %party, task, "{msg}"),
            LogLevel::Warning => tracing::warn!(job_id, %party, task, "{msg}"),
            LogLevel::Error => tracing::error!(job_id, %party, task, "{msg}"),
        }
        if let Some(f) = &self.file {
            let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.3f");
            // A log line that cannot be written must not fail the task; tracing still has it.
            let _ = writeln!(
                f.lock(),
                "[{}] [{now}] [{job_id}] [{party}] [{task}] {msg}",
                level.as_str()
            );
        }
    }
}

/// Everything one party's component sees while it runs.
pub struct Ctx {
    pub job_id: String,
    pub task_name: String,
    pub task_version: u32,
    /// `train`, `predict` or `default` (FATE's task stage, fate-spec §3.3).
    pub stage: String,
    pub local: Party,
    /// The task's parties, sorted (guest, host..., arbiter).
    pub parties: Vec<Party>,
    pub computing: Computing,
    pub federation: Federation,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
    pub outputs: Outputs,
    pub log: TaskLog,
    pub cancel: CancelToken,
    pub catalog: std::sync::Arc<dyn Catalog>,
    /// The node's data roots: the only files a component may open (`upload`).
    pub files: crate::files::DataRoots,
}

/// Stored tables a component may read by name (the `reader` component). Implemented by the
/// scheduler over the metadata store.
pub trait Catalog: Send + Sync {
    fn table(&self, namespace: &str, name: &str) -> Result<Option<TableInfo>, String>;
}

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub schema: Schema,
    pub count: usize,
    pub partitions: usize,
}

/// A catalog with no tables, for components run outside a node.
pub struct EmptyCatalog;

impl Catalog for EmptyCatalog {
    fn table(&self, _namespace: &str, _name: &str) -> Result<Option<TableInfo>, String> {
        Ok(None)
    }
}

impl Ctx {
    pub fn role(&self) -> Role {
        self.local.role
    }

    /// The task's parties that play `role`, in order (`ctx.hosts` in FATE).
    pub fn parties_of(&self, role: Role) -> Vec<Party> {
        self.parties
            .iter()
            .filter(|p| p.role == role)
            .cloned()
            .collect()
    }

    pub fn guest(&self) -> Result<Party, ComponentError> {
        self.parties_of(Role::Guest)
            .into_iter()
            .next()
            .ok_or_else(|| ComponentError::Failed("the task has no guest".into()))
    }

    pub fn info(&self, msg: impl AsRef<str>) {
        self.log.log(LogLevel::Info, msg.as_ref());
    }

    /// A parameter, deserialized; the error names the parameter.
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Result<T, ComponentError> {
        let v = self
            .params
            .get(name)
            .ok_or_else(|| ComponentError::param(name, "required parameter is missing"))?;
        serde_json::from_value(v.clone()).map_err(|e| ComponentError::param(name, e.to_string()))
    }

    /// An optional parameter (absent or null gives `None`).
    pub fn param_opt<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ComponentError> {
        match self.params.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(_) => self.param(name).map(Some),
        }
    }

    pub fn check_canceled(&self) -> Result<(), ComponentError> {
        if self.cancel.is_canceled() {
            Err(ComponentError::Canceled)
        } else {
            Ok(())
        }
    }

    /// Loads the (single) data input `key`.
    pub fn input_data(&self, key: &str) -> Result<DataFrame, ComponentError> {
        let artifacts = self.inputs.get(key).ok_or_else(|| ComponentError::Input {
            key: key.to_string(),
            reason: "no artifact was given for this input".into(),
        })?;
        match artifacts.first() {
            Some(InputArtifact::Data {
                namespace,
                name,
                schema,
                ..
            }) => {
                let table = self.computing.load(namespace, name)?;
                Ok(DataFrame {
                    schema: schema.clone(),
                    table,
                })
            }
            _ => Err(ComponentError::Input {
                key: key.to_string(),
                reason: "expected a data artifact".into(),
            }),
        }
    }

    /// The model input `key`, if given.
    pub fn input_model(&self, key: &str) -> Option<&serde_json::Value> {
        match self.inputs.get(key)?.first()? {
            InputArtifact::Model(v) => Some(v),
            _ => None,
        }
    }

    /// Persists `df` as this task's output artifact `key`.
    pub fn output_data(&self, key: &str, df: &DataFrame) -> Result<(), ComponentError> {
        let namespace = format!("output_data_{}", self.job_id);
        let name = format!(
            "{}_{}_{}_{}",
            self.task_name, key, self.local.role, self.local.party_id
        );
        df.table.save(&namespace, &name, true)?;
        self.outputs.inner.lock().data.push(OutputData {
            key: key.to_string(),
            namespace,
            name,
            count: df.count()?,
            partitions: df.table.num_partitions(),
            schema: df.schema.clone(),
            user_table: false,
            existing: false,
        });
        Ok(())
    }

    /// Persists `df` under a user-chosen name (upload). Without `overwrite` an existing table is
    /// an error and stays as it was.
    pub fn save_user_table(
        &self,
        namespace: &str,
        name: &str,
        df: &DataFrame,
        overwrite: bool,
    ) -> Result<(), ComponentError> {
        df.table.save(namespace, name, overwrite)?;
        self.outputs.inner.lock().data.push(OutputData {
            key: "table".into(),
            namespace: namespace.into(),
            name: name.into(),
            count: df.count()?,
            partitions: df.table.num_partitions(),
            schema: df.schema.clone(),
            user_table: true,
            existing: false,
        });
        Ok(())
    }

    /// Records an existing stored table as this task's output `key` without copying it.
    pub fn output_existing(&self, key: &str, namespace: &str, name: &str, info: &TableInfo) {
        self.outputs.inner.lock().data.push(OutputData {
            key: key.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            count: info.count,
            partitions: info.partitions,
            schema: info.schema.clone(),
            user_table: false,
            existing: true,
        });
    }

    pub fn output_model(&self, key: &str, model: serde_json::Value) {
        self.outputs
            .inner
            .lock()
            .models
            .push((key.to_string(), model));
    }

    /// Records a metric in FATE's shape (`{name, type, data}`, fate-spec §3.3).
    pub fn metric(&self, name: &str, metric_type: &str, data: serde_json::Value) {
        self.outputs
            .inner
            .lock()
            .metrics
            .push((name.to_string(), metric_type.to_string(), data));
    }
}
