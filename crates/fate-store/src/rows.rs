//! Rows as the database returns them, and their checked conversion into records. Nothing read
//! back is trusted: an unknown role or status, or a JSON column that does not parse, becomes
//! [`StoreError::Invalid`] naming the column.

use crate::error::{Result, StoreError};
use crate::records::{
    JobRecord, MetricRecord, ModelRecord, OutputDataRecord, TableRecord, TaskRecord,
};
use fate_types::{JobStatus, Role, TaskStatus};

/// Longest job id, party id or model version (VARCHAR(64) in the schema).
/// A text column as every backend returns it. MariaDB marks columns of a binary collation
/// (`utf8mb4_nopad_bin`, which the store's tables use so that keys compare byte for byte) as
/// BINARY, and sqlx decodes those only as bytes: this type takes them as bytes and checks that
/// they are UTF-8; on SQLite and PostgreSQL it is a `String`.
pub(crate) struct Text(pub(crate) String);

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0
    }
}

impl sqlx::Type<sqlx::MySql> for Text {
    fn type_info() -> sqlx::mysql::MySqlTypeInfo {
        <str as sqlx::Type<sqlx::MySql>>::type_info()
    }
    fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <[u8] as sqlx::Type<sqlx::MySql>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::MySql> for Text {
    fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let bytes = <&[u8] as sqlx::Decode<sqlx::MySql>>::decode(value)?;
        Ok(Text(String::from_utf8(bytes.to_vec())?))
    }
}

/// `Text` is `String` on the backends that report text columns as text.
macro_rules! text_as_string {
    ($($db:ty),*) => {$(
        impl sqlx::Type<$db> for Text {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <String as sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <String as sqlx::Type<$db>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, $db> for Text {
            fn decode(
                value: <$db as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(Text(<String as sqlx::Decode<$db>>::decode(value)?))
            }
        }
    )*};
}
text_as_string!(sqlx::Sqlite, sqlx::Postgres);

pub(crate) const MAX_ID_CHARS: usize = 64;
/// Longest task name, output key, component, table namespace or table name (VARCHAR(128)).
pub(crate) const MAX_NAME_CHARS: usize = 128;
/// Longest model id or user name (VARCHAR(255)).
pub(crate) const MAX_LONG_CHARS: usize = 255;
/// Longest task id (VARCHAR(200)).
pub(crate) const MAX_TASK_ID_CHARS: usize = 200;

/// Checks a value bound for a VARCHAR(max) key column: not empty, at most `max` characters.
pub(crate) fn check_key(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    check_len(field, value, max)
}

/// Checks a value bound for a VARCHAR(max) column that may be empty.
pub(crate) fn check_len(field: &'static str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max {
        return Err(StoreError::invalid(
            field,
            format!("{n} characters, at most {max} allowed"),
        ));
    }
    Ok(())
}

pub(crate) fn check_progress(progress: i32) -> Result<()> {
    if !(0..=100).contains(&progress) {
        return Err(StoreError::invalid(
            "progress",
            format!("{progress} is outside 0..=100"),
        ));
    }
    Ok(())
}

pub(crate) fn check_page(limit: Option<i64>, offset: Option<i64>) -> Result<()> {
    if let Some(l) = limit.filter(|l| *l < 0) {
        return Err(StoreError::invalid("limit", format!("{l} is negative")));
    }
    if let Some(o) = offset.filter(|o| *o < 0) {
        return Err(StoreError::invalid("offset", format!("{o} is negative")));
    }
    Ok(())
}

pub(crate) fn to_json(field: &'static str, value: &serde_json::Value) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::invalid(field, e.to_string()))
}

fn json(column: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::invalid(column, format!("stored value is not JSON: {e}")))
}

pub(crate) fn role(column: &'static str, text: &str) -> Result<Role> {
    text.parse()
        .map_err(|e: fate_types::party::UnknownRole| StoreError::invalid(column, e.to_string()))
}

pub(crate) fn job_status(column: &'static str, text: &str) -> Result<JobStatus> {
    text.parse()
        .map_err(|e: String| StoreError::invalid(column, e))
}

pub(crate) fn task_status(column: &'static str, text: &str) -> Result<TaskStatus> {
    text.parse()
        .map_err(|e: String| StoreError::invalid(column, e))
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    #[sqlx(try_from = "Text")]
    f_job_id: String,
    #[sqlx(try_from = "Text")]
    f_role: String,
    #[sqlx(try_from = "Text")]
    f_party_id: String,
    #[sqlx(try_from = "Text")]
    f_status: String,
    f_progress: i32,
    #[sqlx(try_from = "Text")]
    f_dag: String,
    #[sqlx(try_from = "Text")]
    f_model_id: String,
    #[sqlx(try_from = "Text")]
    f_model_version: String,
    #[sqlx(try_from = "Text")]
    f_initiator_party_id: String,
    #[sqlx(try_from = "Text")]
    f_scheduler_party_id: String,
    #[sqlx(try_from = "Text")]
    f_parties: String,
    #[sqlx(try_from = "Text")]
    f_description: String,
    #[sqlx(try_from = "Text")]
    f_user_name: String,
    f_create_time: i64,
    f_start_time: Option<i64>,
    f_end_time: Option<i64>,
    f_elapsed: Option<i64>,
    f_error: Option<Text>,
    f_cores: i32,
}

pub(crate) const JOB_COLUMNS: &str = "f_job_id, f_role, f_party_id, f_status, f_progress, f_dag, \
    f_model_id, f_model_version, f_initiator_party_id, f_scheduler_party_id, f_parties, \
    f_description, f_user_name, f_create_time, f_start_time, f_end_time, f_elapsed, f_error, f_cores";

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self> {
        Ok(JobRecord {
            role: role("t_job.f_role", &r.f_role)?,
            status: job_status("t_job.f_status", &r.f_status)?,
            dag: json("t_job.f_dag", &r.f_dag)?,
            parties: json("t_job.f_parties", &r.f_parties)?,
            job_id: r.f_job_id,
            party_id: r.f_party_id,
            progress: r.f_progress,
            model_id: r.f_model_id,
            model_version: r.f_model_version,
            initiator_party_id: r.f_initiator_party_id,
            scheduler_party_id: r.f_scheduler_party_id,
            description: r.f_description,
            user_name: r.f_user_name,
            create_time: r.f_create_time,
            start_time: r.f_start_time,
            end_time: r.f_end_time,
            elapsed: r.f_elapsed,
            error: r.f_error.map(String::from),
            cores: r.f_cores,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    #[sqlx(try_from = "Text")]
    f_job_id: String,
    #[sqlx(try_from = "Text")]
    f_task_id: String,
    #[sqlx(try_from = "Text")]
    f_task_name: String,
    f_task_version: i64,
    #[sqlx(try_from = "Text")]
    f_component: String,
    #[sqlx(try_from = "Text")]
    f_role: String,
    #[sqlx(try_from = "Text")]
    f_party_id: String,
    #[sqlx(try_from = "Text")]
    f_status: String,
    #[sqlx(try_from = "Text")]
    f_parameters: String,
    f_create_time: i64,
    f_start_time: Option<i64>,
    f_end_time: Option<i64>,
    f_elapsed: Option<i64>,
    f_error: Option<Text>,
}

pub(crate) const TASK_COLUMNS: &str = "f_job_id, f_task_id, f_task_name, f_task_version, \
    f_component, f_role, f_party_id, f_status, f_parameters, f_create_time, f_start_time, \
    f_end_time, f_elapsed, f_error";

impl TryFrom<TaskRow> for TaskRecord {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> Result<Self> {
        Ok(TaskRecord {
            role: role("t_task.f_role", &r.f_role)?,
            status: task_status("t_task.f_status", &r.f_status)?,
            parameters: json("t_task.f_parameters", &r.f_parameters)?,
            job_id: r.f_job_id,
            task_id: r.f_task_id,
            task_name: r.f_task_name,
            task_version: r.f_task_version,
            component: r.f_component,
            party_id: r.f_party_id,
            create_time: r.f_create_time,
            start_time: r.f_start_time,
            end_time: r.f_end_time,
            elapsed: r.f_elapsed,
            error: r.f_error.map(String::from),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TableRow {
    #[sqlx(try_from = "Text")]
    f_namespace: String,
    #[sqlx(try_from = "Text")]
    f_name: String,
    f_partitions: i32,
    f_count: i64,
    #[sqlx(try_from = "Text")]
    f_schema: String,
    #[sqlx(try_from = "Text")]
    f_engine: String,
    #[sqlx(try_from = "Text")]
    f_path: String,
    #[sqlx(try_from = "Text")]
    f_address: String,
    #[sqlx(try_from = "Text")]
    f_source: String,
    f_create_time: i64,
}

pub(crate) const TABLE_COLUMNS: &str = "f_namespace, f_name, f_partitions, f_count, f_schema, \
    f_engine, f_path, f_address, f_source, f_create_time";

impl TryFrom<TableRow> for TableRecord {
    type Error = StoreError;
    fn try_from(r: TableRow) -> Result<Self> {
        Ok(TableRecord {
            schema: json("t_table_meta.f_schema", &r.f_schema)?,
            source: json("t_table_meta.f_source", &r.f_source)?,
            namespace: r.f_namespace,
            name: r.f_name,
            partitions: r.f_partitions,
            count: r.f_count,
            engine: r.f_engine,
            path: r.f_path,
            address: r.f_address,
            create_time: r.f_create_time,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MetricRow {
    #[sqlx(try_from = "Text")]
    f_job_id: String,
    #[sqlx(try_from = "Text")]
    f_role: String,
    #[sqlx(try_from = "Text")]
    f_party_id: String,
    #[sqlx(try_from = "Text")]
    f_task_name: String,
    #[sqlx(try_from = "Text")]
    f_name: String,
    #[sqlx(try_from = "Text")]
    f_type: String,
    #[sqlx(try_from = "Text")]
    f_groups: String,
    f_step_axis: Option<Text>,
    #[sqlx(try_from = "Text")]
    f_data: String,
    f_create_time: i64,
}

pub(crate) const METRIC_COLUMNS: &str = "f_job_id, f_role, f_party_id, f_task_name, f_name, \
    f_type, f_groups, f_step_axis, f_data, f_create_time";

impl TryFrom<MetricRow> for MetricRecord {
    type Error = StoreError;
    fn try_from(r: MetricRow) -> Result<Self> {
        Ok(MetricRecord {
            role: role("t_metric.f_role", &r.f_role)?,
            groups: json("t_metric.f_groups", &r.f_groups)?,
            data: json("t_metric.f_data", &r.f_data)?,
            job_id: r.f_job_id,
            party_id: r.f_party_id,
            task_name: r.f_task_name,
            name: r.f_name,
            metric_type: r.f_type,
            step_axis: r.f_step_axis.map(String::from),
            create_time: r.f_create_time,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ModelRow {
    #[sqlx(try_from = "Text")]
    f_job_id: String,
    #[sqlx(try_from = "Text")]
    f_role: String,
    #[sqlx(try_from = "Text")]
    f_party_id: String,
    #[sqlx(try_from = "Text")]
    f_task_name: String,
    #[sqlx(try_from = "Text")]
    f_output_key: String,
    #[sqlx(try_from = "Text")]
    f_model_id: String,
    #[sqlx(try_from = "Text")]
    f_model_version: String,
    #[sqlx(try_from = "Text")]
    f_component: String,
    #[sqlx(try_from = "Text")]
    f_data: String,
    f_create_time: i64,
}

pub(crate) const MODEL_COLUMNS: &str = "f_job_id, f_role, f_party_id, f_task_name, f_output_key, \
    f_model_id, f_model_version, f_component, f_data, f_create_time";

impl TryFrom<ModelRow> for ModelRecord {
    type Error = StoreError;
    fn try_from(r: ModelRow) -> Result<Self> {
        Ok(ModelRecord {
            role: role("t_model.f_role", &r.f_role)?,
            data: json("t_model.f_data", &r.f_data)?,
            job_id: r.f_job_id,
            party_id: r.f_party_id,
            task_name: r.f_task_name,
            output_key: r.f_output_key,
            model_id: r.f_model_id,
            model_version: r.f_model_version,
            component: r.f_component,
            create_time: r.f_create_time,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutputDataRow {
    #[sqlx(try_from = "Text")]
    f_job_id: String,
    #[sqlx(try_from = "Text")]
    f_role: String,
    #[sqlx(try_from = "Text")]
    f_party_id: String,
    #[sqlx(try_from = "Text")]
    f_task_name: String,
    #[sqlx(try_from = "Text")]
    f_output_key: String,
    #[sqlx(try_from = "Text")]
    f_namespace: String,
    #[sqlx(try_from = "Text")]
    f_name: String,
    f_create_time: i64,
}

pub(crate) const OUTPUT_DATA_COLUMNS: &str = "f_job_id, f_role, f_party_id, f_task_name, \
    f_output_key, f_namespace, f_name, f_create_time";

impl TryFrom<OutputDataRow> for OutputDataRecord {
    type Error = StoreError;
    fn try_from(r: OutputDataRow) -> Result<Self> {
        Ok(OutputDataRecord {
            role: role("t_output_data.f_role", &r.f_role)?,
            job_id: r.f_job_id,
            party_id: r.f_party_id,
            task_name: r.f_task_name,
            output_key: r.f_output_key,
            namespace: r.f_namespace,
            name: r.f_name,
            create_time: r.f_create_time,
        })
    }
}

/// Converts every row, failing on the first bad one.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
