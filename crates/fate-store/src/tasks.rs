//! Tasks: one row per `(job_id, task_name, task_version, role, party_id)` (fate-spec §3.1).

use crate::error::{Result, StoreError};
use crate::records::{TaskFilter, TaskRecord};
use crate::rows::{
    self, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_TASK_ID_CHARS, TASK_COLUMNS, TaskRow, Text, check_key,
    check_len, check_page, convert, to_json,
};
use crate::{Dialect, MAX_CAS_ATTEMPTS, MetaStore, conflict_on_unique, push_page, with_pool};
use fate_types::{Role, TaskStatus};
use sqlx::QueryBuilder;

fn task_key(
    job_id: &str,
    task_name: &str,
    task_version: i64,
    role: Role,
    party_id: &str,
) -> String {
    format!("{job_id}/{task_name} version {task_version} at {role}:{party_id}")
}

fn validate_task(t: &TaskRecord) -> Result<()> {
    check_key("job_id", &t.job_id, MAX_ID_CHARS)?;
    check_key("task_name", &t.task_name, MAX_NAME_CHARS)?;
    check_key("task_id", &t.task_id, MAX_TASK_ID_CHARS)?;
    check_key("party_id", &t.party_id, MAX_ID_CHARS)?;
    check_len("component", &t.component, MAX_NAME_CHARS)?;
    if t.task_version < 0 {
        return Err(StoreError::invalid(
            "task_version",
            format!("{} is negative", t.task_version),
        ));
    }
    Ok(())
}

impl MetaStore {
    /// Stores a new task row. [`StoreError::Conflict`] if
    /// `(job_id, task_name, task_version, role, party_id)` exists.
    pub async fn insert_task(&self, t: &TaskRecord) -> Result<()> {
        with_pool!(self, pool, DB => {
            validate_task(t)?;
            let parameters = to_json("parameters", &t.parameters)?;
            sqlx::query(
                &DB::sql("INSERT INTO t_task (f_job_id, f_task_id, f_task_name, f_task_version, f_component, \
                 f_role, f_party_id, f_status, f_parameters, f_create_time, f_start_time, f_end_time, \
                 f_elapsed, f_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            )
            .bind(&t.job_id)
            .bind(&t.task_id)
            .bind(&t.task_name)
            .bind(t.task_version)
            .bind(&t.component)
            .bind(t.role.as_str())
            .bind(&t.party_id)
            .bind(t.status.as_str())
            .bind(parameters)
            .bind(t.create_time)
            .bind(t.start_time)
            .bind(t.end_time)
            .bind(t.elapsed)
            .bind(&t.error)
            .execute(pool)
            .await
            .map_err(|e| {
                conflict_on_unique(e, "task", || {
                    task_key(&t.job_id, &t.task_name, t.task_version, t.role, &t.party_id)
                })
            })?;
            Ok(())
        })
    }

    /// Task rows matching `filter`, ordered by job, creation time, task name, version, role
    /// and party.
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>> {
        with_pool!(self, pool, DB => {
            check_page(filter.limit, filter.offset)?;
            let mut qb =
                QueryBuilder::<DB>::new(format!("SELECT {TASK_COLUMNS} FROM t_task WHERE 1 = 1"));
            if let Some(job_id) = &filter.job_id {
                qb.push(" AND f_job_id = ").push_bind(job_id.as_str());
            }
            if let Some(task_name) = &filter.task_name {
                qb.push(" AND f_task_name = ").push_bind(task_name.as_str());
            }
            if let Some(role) = filter.role {
                qb.push(" AND f_role = ").push_bind(role.as_str());
            }
            if let Some(party_id) = &filter.party_id {
                qb.push(" AND f_party_id = ").push_bind(party_id.as_str());
            }
            if let Some(status) = filter.status {
                qb.push(" AND f_status = ").push_bind(status.as_str());
            }
            if let Some(version) = filter.task_version {
                qb.push(" AND f_task_version = ").push_bind(version);
            }
            qb.push(
                " ORDER BY f_job_id, f_create_time, f_task_name, f_task_version, f_role, f_party_id",
            );
            push_page(&mut qb, filter.limit, filter.offset);
            let rows: Vec<TaskRow> = qb.build_query_as().fetch_all(pool).await?;
            convert(rows)
        })
    }

    /// Moves a task row to `to` if FATE's rules allow it from the stored status
    /// ([`TaskStatus::can_transition_to`]); returns `false`, changing nothing, if they do not.
    /// Entering `running` sets `start_time = now_ms`; entering an end status sets
    /// `end_time = now_ms` and `elapsed` (NULL if the task never started). `error`, if given,
    /// is stored with an applied transition. [`StoreError::NotFound`] if the row does not exist.
    #[allow(clippy::too_many_arguments)] // One argument per key column plus the change.
    pub async fn set_task_status_checked(
        &self,
        job_id: &str,
        task_name: &str,
        task_version: i64,
        role: Role,
        party_id: &str,
        to: TaskStatus,
        now_ms: i64,
        error: Option<&str>,
    ) -> Result<bool> {
        with_pool!(self, pool, DB => {
            let key = || task_key(job_id, task_name, task_version, role, party_id);
            for _ in 0..MAX_CAS_ATTEMPTS {
                let stored: Option<Text> = sqlx::query_scalar(
                    &DB::sql("SELECT f_status FROM t_task WHERE f_job_id = ? AND f_task_name = ? \
                     AND f_task_version = ? AND f_role = ? AND f_party_id = ?")
                )
                .bind(job_id)
                .bind(task_name)
                .bind(task_version)
                .bind(role.as_str())
                .bind(party_id)
                .fetch_optional(pool)
                .await?;
                let Some(Text(stored)) = stored else {
                    return Err(StoreError::NotFound {
                        what: "task",
                        key: key(),
                    });
                };
                let from = rows::task_status("t_task.f_status", &stored)?;
                if !from.can_transition_to(to) {
                    tracing::debug!(task = %key(), %from, %to, "task status transition refused");
                    return Ok(false);
                }
                let mut qb = QueryBuilder::<DB>::new("UPDATE t_task SET f_status = ");
                qb.push_bind(to.as_str());
                if to == TaskStatus::Running {
                    qb.push(", f_start_time = ").push_bind(now_ms);
                }
                if to.is_end() {
                    qb.push(", f_end_time = ").push_bind(now_ms);
                    qb.push(", f_elapsed = ")
                        .push_bind(now_ms)
                        .push(" - f_start_time");
                }
                if let Some(error) = error {
                    qb.push(", f_error = ").push_bind(error);
                }
                qb.push(" WHERE f_job_id = ")
                    .push_bind(job_id)
                    .push(" AND f_task_name = ")
                    .push_bind(task_name)
                    .push(" AND f_task_version = ")
                    .push_bind(task_version)
                    .push(" AND f_role = ")
                    .push_bind(role.as_str())
                    .push(" AND f_party_id = ")
                    .push_bind(party_id)
                    .push(" AND f_status = ")
                    .push_bind(stored);
                if qb.build().execute(pool).await?.rows_affected() == 1 {
                    return Ok(true);
                }
                // Another writer changed the status (or deleted the row) in between: look again.
            }
            Err(StoreError::Conflict {
                what: "task status (concurrent updates)",
                key: key(),
        })
        })
    }

    /// Deletes every task row of a job (all tasks, versions and parties), for rerun
    /// bookkeeping. Returns how many rows went.
    pub async fn delete_tasks_of_job(&self, job_id: &str) -> Result<u64> {
        with_pool!(self, pool, DB => {
            let done = sqlx::query(&DB::sql("DELETE FROM t_task WHERE f_job_id = ?"))
                .bind(job_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}
