//! The records the store keeps. Field names are the ones FATE-Flow's REST API shows
//! (fate-spec §3.4, `GET /job/query`, `/job/task/query`, `/table/query`, `/output/*`), so the
//! API layer can serialize them as they are. Times are epoch milliseconds.

use fate_types::{JobStatus, Role, TaskStatus};
use serde::{Deserialize, Serialize};

/// One party's view of a job: FATE keeps one row per `(job_id, role, party_id)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub role: Role,
    pub party_id: String,
    pub status: JobStatus,
    /// Finished tasks in percent, 0..=100.
    pub progress: i32,
    /// The submitted `dag_schema` (fate-spec §3.3).
    pub dag: serde_json::Value,
    pub model_id: String,
    pub model_version: String,
    pub initiator_party_id: String,
    pub scheduler_party_id: String,
    /// The DAG's `parties` list.
    pub parties: serde_json::Value,
    pub description: String,
    pub user_name: String,
    pub create_time: i64,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    /// `end_time - start_time` in milliseconds, set when the job ends.
    pub elapsed: Option<i64>,
    pub error: Option<String>,
    pub cores: i32,
}

/// Which jobs [`crate::MetaStore::jobs`] returns; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub job_id: Option<String>,
    pub role: Option<Role>,
    pub party_id: Option<String>,
    pub status: Option<JobStatus>,
    /// Jobs whose description (FATE-Flow's notes) contains this text, ignoring ASCII case, as
    /// FATE-Flow's `query_job_list` (peewee `contains`, an ILIKE) filters.
    pub description: Option<String>,
    /// At most this many rows (must not be negative).
    pub limit: Option<i64>,
    /// Skip this many rows first (must not be negative).
    pub offset: Option<i64>,
}

/// Fields [`crate::MetaStore::update_job`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobUpdate {
    pub status: Option<JobStatus>,
    pub progress: Option<i32>,
    pub start_time: Option<i64>,
    /// Setting the end time also sets `elapsed` from the (new or stored) start time.
    pub end_time: Option<i64>,
    pub error: Option<String>,
}

/// One party's run of one task version: FATE keeps one row per
/// `(job_id, task_name, task_version, role, party_id)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub job_id: String,
    /// FATE's task id, `{job_id}_{task_name}` (see [`TaskRecord::fate_task_id`]).
    pub task_id: String,
    pub task_name: String,
    /// Bumped by every rerun, starting at 0.
    pub task_version: i64,
    /// The component this task runs (`component_ref` in the DAG).
    pub component: String,
    pub role: Role,
    pub party_id: String,
    pub status: TaskStatus,
    pub parameters: serde_json::Value,
    pub create_time: i64,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub elapsed: Option<i64>,
    pub error: Option<String>,
}

impl TaskRecord {
    /// FATE's task id for a task of a job: `{job_id}_{task_name}` (fate-spec §3.1).
    pub fn fate_task_id(job_id: &str, task_name: &str) -> String {
        format!("{job_id}_{task_name}")
    }
}

/// Which tasks [`crate::MetaStore::tasks`] returns; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub job_id: Option<String>,
    pub task_name: Option<String>,
    pub role: Option<Role>,
    pub party_id: Option<String>,
    pub status: Option<TaskStatus>,
    pub task_version: Option<i64>,
    /// At most this many rows (must not be negative).
    pub limit: Option<i64>,
    /// Skip this many rows first (must not be negative).
    pub offset: Option<i64>,
}

/// Metadata of a stored table; `(namespace, name)` is unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    pub namespace: String,
    pub name: String,
    pub partitions: i32,
    pub count: i64,
    /// Header and upload meta (fate-spec §3.4 upload `meta`).
    pub schema: serde_json::Value,
    /// Storage engine (FATE's table meta `engine`): `standalone` for the redb store, else the
    /// scheme of the node's storage URI (`file`, `hdfs`, `s3`).
    pub engine: String,
    pub path: String,
    /// Where the data lives (FATE's table meta `address`): the table's URI in the node's
    /// storage, or `namespace/name` in the standalone store.
    pub address: String,
    /// Where the table came from (job_id, task_name, ...).
    pub source: serde_json::Value,
    pub create_time: i64,
}

/// One metric a task reported at a party (fate-spec §3.3 "Component outputs").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub job_id: String,
    pub role: Role,
    pub party_id: String,
    pub task_name: String,
    pub name: String,
    /// FATE's metric `type`.
    #[serde(rename = "type")]
    pub metric_type: String,
    /// `[{name, index}]`.
    pub groups: serde_json::Value,
    pub step_axis: Option<String>,
    /// `[{metric, step, timestamp}]`.
    pub data: serde_json::Value,
    pub create_time: i64,
}

/// A model a task saved at a party; `(job_id, role, party_id, task_name, output_key)` is unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub job_id: String,
    pub role: Role,
    pub party_id: String,
    pub task_name: String,
    pub output_key: String,
    pub model_id: String,
    pub model_version: String,
    pub component: String,
    pub data: serde_json::Value,
    pub create_time: i64,
}

/// A data table a task wrote for one of its outputs; an output key may name several tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputDataRecord {
    pub job_id: String,
    pub role: Role,
    pub party_id: String,
    pub task_name: String,
    pub output_key: String,
    pub namespace: String,
    pub name: String,
    pub create_time: i64,
}
