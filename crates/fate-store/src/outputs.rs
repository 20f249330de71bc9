//! Outputs of a task at a party: metrics, models and references to output data tables
//! (fate-spec §3.3 "Component outputs", §3.4 `/output/*`, `/worker/*`).

use crate::error::Result;
use crate::records::{MetricRecord, ModelRecord, OutputDataRecord};
use crate::rows::{
    MAX_ID_CHARS, MAX_LONG_CHARS, MAX_NAME_CHARS, METRIC_COLUMNS, MODEL_COLUMNS, MetricRow,
    ModelRow, OUTPUT_DATA_COLUMNS, OutputDataRow, check_key, check_len, convert, to_json,
};
use crate::{Dialect, MetaStore, with_pool};
use fate_types::Role;
use sqlx::QueryBuilder;

/// Checks the `(job_id, party_id, task_name)` part every output row carries.
fn check_task_ref(job_id: &str, party_id: &str, task_name: &str) -> Result<()> {
    check_key("job_id", job_id, MAX_ID_CHARS)?;
    check_key("party_id", party_id, MAX_ID_CHARS)?;
    check_key("task_name", task_name, MAX_NAME_CHARS)
}

/// `SELECT columns FROM table` for one party's outputs of a job, optionally of one task.
fn select_outputs<'a, DB: sqlx::Database>(
    columns: &str,
    table: &str,
    job_id: &'a str,
    role: Role,
    party_id: &'a str,
    task_name: Option<&'a str>,
) -> QueryBuilder<'a, DB>
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut qb =
        QueryBuilder::<DB>::new(format!("SELECT {columns} FROM {table} WHERE f_job_id = "));
    qb.push_bind(job_id)
        .push(" AND f_role = ")
        .push_bind(role.as_str())
        .push(" AND f_party_id = ")
        .push_bind(party_id);
    if let Some(task_name) = task_name {
        qb.push(" AND f_task_name = ").push_bind(task_name);
    }
    qb
}

impl MetaStore {
    /// Appends a metric, as FATE-Flow does (a component may report one metric in batches).
    pub async fn save_metric(&self, m: &MetricRecord) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_task_ref(&m.job_id, &m.party_id, &m.task_name)?;
            let groups = to_json("groups", &m.groups)?;
            let data = to_json("data", &m.data)?;
            sqlx::query(
                &DB::sql("INSERT INTO t_metric (f_job_id, f_role, f_party_id, f_task_name, f_name, f_type, \
                 f_groups, f_step_axis, f_data, f_create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            )
            .bind(&m.job_id)
            .bind(m.role.as_str())
            .bind(&m.party_id)
            .bind(&m.task_name)
            .bind(&m.name)
            .bind(&m.metric_type)
            .bind(groups)
            .bind(&m.step_axis)
            .bind(data)
            .bind(m.create_time)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The metrics of a job at one party (of one task if `task_name` is given), in the order
    /// of their `create_time`, then task and metric name.
    pub async fn metrics(
        &self,
        job_id: &str,
        role: Role,
        party_id: &str,
        task_name: Option<&str>,
    ) -> Result<Vec<MetricRecord>> {
        with_pool!(self, pool, DB => {
            let mut qb = select_outputs(
                METRIC_COLUMNS,
                "t_metric",
                job_id,
                role,
                party_id,
                task_name,
            );
            qb.push(" ORDER BY f_create_time, f_task_name, f_name");
            let rows: Vec<MetricRow> = qb.build_query_as().fetch_all(pool).await?;
            convert(rows)
        })
    }

    /// Deletes the metrics of one task at one party (FATE-Flow's `/output/metric/delete`);
    /// answers how many rows went.
    pub async fn delete_metrics(
        &self,
        job_id: &str,
        role: Role,
        party_id: &str,
        task_name: &str,
    ) -> Result<u64> {
        with_pool!(self, pool, DB => {
            let r = sqlx::query(
                &DB::sql("DELETE FROM t_metric WHERE f_job_id = ? AND f_role = ? AND f_party_id = ? \
                 AND f_task_name = ?")
            )
            .bind(job_id)
            .bind(role.as_str())
            .bind(party_id)
            .bind(task_name)
            .execute(pool)
            .await?;
            Ok(r.rows_affected())
        })
    }

    /// Stores a model, replacing the one stored under the same
    /// `(job_id, role, party_id, task_name, output_key)`.
    pub async fn save_model(&self, m: &ModelRecord) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_task_ref(&m.job_id, &m.party_id, &m.task_name)?;
            check_key("output_key", &m.output_key, MAX_NAME_CHARS)?;
            check_len("model_id", &m.model_id, MAX_LONG_CHARS)?;
            check_len("model_version", &m.model_version, MAX_ID_CHARS)?;
            check_len("component", &m.component, MAX_NAME_CHARS)?;
            let data = to_json("data", &m.data)?;
            // Delete and insert in one transaction: portable, unlike each backend's upsert.
            let mut tx = pool.begin().await?;
            sqlx::query(
                &DB::sql("DELETE FROM t_model WHERE f_job_id = ? AND f_role = ? AND f_party_id = ? \
                 AND f_task_name = ? AND f_output_key = ?")
            )
            .bind(&m.job_id)
            .bind(m.role.as_str())
            .bind(&m.party_id)
            .bind(&m.task_name)
            .bind(&m.output_key)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                &DB::sql("INSERT INTO t_model (f_job_id, f_role, f_party_id, f_task_name, f_output_key, \
                 f_model_id, f_model_version, f_component, f_data, f_create_time) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            )
            .bind(&m.job_id)
            .bind(m.role.as_str())
            .bind(&m.party_id)
            .bind(&m.task_name)
            .bind(&m.output_key)
            .bind(&m.model_id)
            .bind(&m.model_version)
            .bind(&m.component)
            .bind(data)
            .bind(m.create_time)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The models of a job at one party (of one task if `task_name` is given), ordered by
    /// task name and output key.
    pub async fn models(
        &self,
        job_id: &str,
        role: Role,
        party_id: &str,
        task_name: Option<&str>,
    ) -> Result<Vec<ModelRecord>> {
        with_pool!(self, pool, DB => {
            let mut qb = select_outputs(MODEL_COLUMNS, "t_model", job_id, role, party_id, task_name);
            qb.push(" ORDER BY f_task_name, f_output_key");
            let rows: Vec<ModelRow> = qb.build_query_as().fetch_all(pool).await?;
            convert(rows)
        })
    }

    /// Deletes models (FATE-Flow's `/output/model/delete` and `/model/delete`): those of a
    /// model id and version, narrowed by whichever of role, party, task and output key are
    /// given; answers how many rows went.
    pub async fn delete_models(&self, sel: &ModelSelector<'_>) -> Result<u64> {
        with_pool!(self, pool, DB => {
            let mut qb = QueryBuilder::<DB>::new("DELETE FROM t_model WHERE 1 = 1");
            for (column, value) in [
                ("f_job_id", sel.job_id),
                ("f_model_id", sel.model_id),
                ("f_model_version", sel.model_version),
                ("f_role", sel.role.map(Role::as_str)),
                ("f_party_id", sel.party_id),
                ("f_task_name", sel.task_name),
                ("f_output_key", sel.output_key),
            ] {
                if let Some(v) = value {
                    qb.push(format!(" AND {column} = "));
                    qb.push_bind(v.to_string());
                }
            }
            Ok(qb.build().execute(pool).await?.rows_affected())
        })
    }

    /// The models one party saved under a model id and version, across jobs, for predict
    /// jobs that read them through `model_warehouse` (fate-spec §3.3). Ordered by task name
    /// and output key.
    pub async fn models_by_model_id(
        &self,
        model_id: &str,
        model_version: &str,
        role: Role,
        party_id: &str,
    ) -> Result<Vec<ModelRecord>> {
        with_pool!(self, pool, DB => {
            let rows: Vec<ModelRow> = sqlx::query_as(&DB::sql(&format!(
                "SELECT {MODEL_COLUMNS} FROM t_model WHERE f_model_id = ? AND f_model_version = ? \
                 AND f_role = ? AND f_party_id = ? ORDER BY f_task_name, f_output_key, f_job_id"
            )))
            .bind(model_id)
            .bind(model_version)
            .bind(role.as_str())
            .bind(party_id)
            .fetch_all(pool)
            .await?;
            convert(rows)
        })
    }

    /// Records that a task wrote table `(namespace, name)` for `output_key`. Saving the same
    /// reference again replaces it (only `create_time` can differ).
    pub async fn save_output_data(&self, d: &OutputDataRecord) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_task_ref(&d.job_id, &d.party_id, &d.task_name)?;
            check_key("output_key", &d.output_key, MAX_NAME_CHARS)?;
            check_key("namespace", &d.namespace, MAX_NAME_CHARS)?;
            check_key("name", &d.name, MAX_NAME_CHARS)?;
            let mut tx = pool.begin().await?;
            sqlx::query(
                &DB::sql("DELETE FROM t_output_data WHERE f_job_id = ? AND f_role = ? AND f_party_id = ? \
                 AND f_task_name = ? AND f_output_key = ? AND f_namespace = ? AND f_name = ?")
            )
            .bind(&d.job_id)
            .bind(d.role.as_str())
            .bind(&d.party_id)
            .bind(&d.task_name)
            .bind(&d.output_key)
            .bind(&d.namespace)
            .bind(&d.name)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                &DB::sql("INSERT INTO t_output_data (f_job_id, f_role, f_party_id, f_task_name, f_output_key, \
                 f_namespace, f_name, f_create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            )
            .bind(&d.job_id)
            .bind(d.role.as_str())
            .bind(&d.party_id)
            .bind(&d.task_name)
            .bind(&d.output_key)
            .bind(&d.namespace)
            .bind(&d.name)
            .bind(d.create_time)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The output tables of a job at one party (of one task if `task_name` is given), ordered
    /// by task name, output key, namespace and name.
    pub async fn output_data(
        &self,
        job_id: &str,
        role: Role,
        party_id: &str,
        task_name: Option<&str>,
    ) -> Result<Vec<OutputDataRecord>> {
        with_pool!(self, pool, DB => {
            let mut qb = select_outputs(
                OUTPUT_DATA_COLUMNS,
                "t_output_data",
                job_id,
                role,
                party_id,
                task_name,
            );
            qb.push(" ORDER BY f_task_name, f_output_key, f_namespace, f_name");
            let rows: Vec<OutputDataRow> = qb.build_query_as().fetch_all(pool).await?;
            convert(rows)
        })
    }
}

/// Which models [`crate::MetaStore::delete_models`] removes; `None` fields do not narrow.
#[derive(Debug, Clone, Default)]
pub struct ModelSelector<'a> {
    pub job_id: Option<&'a str>,
    pub model_id: Option<&'a str>,
    pub model_version: Option<&'a str>,
    pub role: Option<Role>,
    pub party_id: Option<&'a str>,
    pub task_name: Option<&'a str>,
    pub output_key: Option<&'a str>,
}
