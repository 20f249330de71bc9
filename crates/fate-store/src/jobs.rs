//! Jobs: one row per `(job_id, role, party_id)` (fate-spec §3.1).

use crate::error::{Result, StoreError};
use crate::records::{JobFilter, JobRecord, JobUpdate};
use crate::rows::{
    self, JOB_COLUMNS, JobRow, MAX_ID_CHARS, MAX_LONG_CHARS, Text, check_key, check_len,
    check_page, check_progress, convert, to_json,
};
use crate::{Dialect, MAX_CAS_ATTEMPTS, MetaStore, conflict_on_unique, push_page, with_pool};
use fate_types::{JobStatus, Role};
use sqlx::QueryBuilder;

fn job_key(job_id: &str, role: Role, party_id: &str) -> String {
    format!("{job_id} at {role}:{party_id}")
}

fn validate_job(job: &JobRecord) -> Result<()> {
    check_key("job_id", &job.job_id, MAX_ID_CHARS)?;
    check_key("party_id", &job.party_id, MAX_ID_CHARS)?;
    check_progress(job.progress)?;
    check_len("model_id", &job.model_id, MAX_LONG_CHARS)?;
    check_len("model_version", &job.model_version, MAX_ID_CHARS)?;
    check_len("initiator_party_id", &job.initiator_party_id, MAX_ID_CHARS)?;
    check_len("scheduler_party_id", &job.scheduler_party_id, MAX_ID_CHARS)?;
    check_len("user_name", &job.user_name, MAX_LONG_CHARS)?;
    if job.cores < 0 {
        return Err(StoreError::invalid(
            "cores",
            format!("{} is negative", job.cores),
        ));
    }
    Ok(())
}

impl MetaStore {
    /// Deletes every row of a job (all parties) and its task rows, for a job refused while it
    /// was being created (no party ran anything). Returns how many job rows went.
    pub async fn delete_job(&self, job_id: &str) -> Result<u64> {
        with_pool!(self, pool, DB => {
            self.delete_tasks_of_job(job_id).await?;
            let done = sqlx::query(&DB::sql("DELETE FROM t_job WHERE f_job_id = ?"))
                .bind(job_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Stores a new job row. [`StoreError::Conflict`] if `(job_id, role, party_id)` exists.
    pub async fn insert_job(&self, job: &JobRecord) -> Result<()> {
        with_pool!(self, pool, DB => {
            validate_job(job)?;
            let dag = to_json("dag", &job.dag)?;
            let parties = to_json("parties", &job.parties)?;
            sqlx::query(
                &DB::sql("INSERT INTO t_job (f_job_id, f_role, f_party_id, f_status, f_progress, f_dag, \
                 f_model_id, f_model_version, f_initiator_party_id, f_scheduler_party_id, f_parties, \
                 f_description, f_user_name, f_create_time, f_start_time, f_end_time, f_elapsed, \
                 f_error, f_cores) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            )
            .bind(&job.job_id)
            .bind(job.role.as_str())
            .bind(&job.party_id)
            .bind(job.status.as_str())
            .bind(job.progress)
            .bind(dag)
            .bind(&job.model_id)
            .bind(&job.model_version)
            .bind(&job.initiator_party_id)
            .bind(&job.scheduler_party_id)
            .bind(parties)
            .bind(&job.description)
            .bind(&job.user_name)
            .bind(job.create_time)
            .bind(job.start_time)
            .bind(job.end_time)
            .bind(job.elapsed)
            .bind(&job.error)
            .bind(job.cores)
            .execute(pool)
            .await
            .map_err(|e| {
                conflict_on_unique(e, "job", || job_key(&job.job_id, job.role, &job.party_id))
            })?;
            Ok(())
        })
    }

    /// Job rows matching `filter`, newest first (by `create_time`, then `job_id`).
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        with_pool!(self, pool, DB => {
            check_page(filter.limit, filter.offset)?;
            let mut qb =
                QueryBuilder::<DB>::new(format!("SELECT {JOB_COLUMNS} FROM t_job WHERE 1 = 1"));
            push_job_filter(&mut qb, filter);
            qb.push(" ORDER BY f_create_time DESC, f_job_id DESC, f_role, f_party_id");
            push_page(&mut qb, filter.limit, filter.offset);
            let rows: Vec<JobRow> = qb.build_query_as().fetch_all(pool).await?;
            convert(rows)
        })
    }

    /// How many job rows match `filter` (its `limit` and `offset` ignored): the `count` of a
    /// paged job list, counted by the database instead of by loading every row.
    pub async fn count_jobs(&self, filter: &JobFilter) -> Result<i64> {
        with_pool!(self, pool, DB => {
            let mut qb = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM t_job WHERE 1 = 1");
            push_job_filter(&mut qb, filter);
            let (n,): (i64,) = qb.build_query_as().fetch_one(pool).await?;
            Ok(n)
        })
    }

    /// Changes the fields set in `update` without checking status transitions (use
    /// [`MetaStore::set_job_status_checked`] for that). Setting `end_time` also sets `elapsed`
    /// from the new or stored start time (NULL without one). [`StoreError::NotFound`] if the
    /// row does not exist.
    pub async fn update_job(
        &self,
        job_id: &str,
        role: Role,
        party_id: &str,
        update: &JobUpdate,
    ) -> Result<()> {
        with_pool!(self, pool, DB => {
            if let Some(progress) = update.progress {
                check_progress(progress)?;
            }
            if let (Some(start), Some(end)) = (update.start_time, update.end_time)
                && end < start
            {
                return Err(StoreError::invalid(
                    "end_time",
                    format!("{end} is before start_time {start}"),
                ));
            }
            let mut qb = QueryBuilder::<DB>::new("UPDATE t_job SET ");
            let mut set = qb.separated(", ");
            let mut n_fields = 0;
            if let Some(status) = update.status {
                set.push("f_status = ")
                    .push_bind_unseparated(status.as_str());
                n_fields += 1;
            }
            if let Some(progress) = update.progress {
                set.push("f_progress = ").push_bind_unseparated(progress);
                n_fields += 1;
            }
            if let Some(start) = update.start_time {
                set.push("f_start_time = ").push_bind_unseparated(start);
                n_fields += 1;
            }
            if let Some(end) = update.end_time {
                set.push("f_end_time = ").push_bind_unseparated(end);
                match update.start_time {
                    Some(start) => set.push("f_elapsed = ").push_bind_unseparated(end - start),
                    // NULL when no start time is stored. The start time is not assigned in this
                    // statement, so the order in which a backend evaluates SET does not matter.
                    None => set
                        .push("f_elapsed = ")
                        .push_bind_unseparated(end)
                        .push_unseparated(" - f_start_time"),
                };
                n_fields += 1;
            }
            if let Some(error) = &update.error {
                set.push("f_error = ").push_bind_unseparated(error.as_str());
                n_fields += 1;
            }
            if n_fields == 0 {
                // Nothing to change; still report a missing row.
                return match self.job_status(job_id, role, party_id).await? {
                    Some(_) => Ok(()),
                    None => Err(StoreError::NotFound {
                        what: "job",
                        key: job_key(job_id, role, party_id),
                    }),
                };
            }
            qb.push(" WHERE f_job_id = ")
                .push_bind(job_id)
                .push(" AND f_role = ")
                .push_bind(role.as_str())
                .push(" AND f_party_id = ")
                .push_bind(party_id);
            let done = qb.build().execute(pool).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    what: "job",
                    key: job_key(job_id, role, party_id),
                });
            }
            Ok(())
        })
    }

    /// Sets a job row's description (FATE-Flow's `/job/notes/add` writes `f_description`).
    /// [`StoreError::NotFound`] if the row does not exist.
    pub async fn set_job_description(
        &self,
        job_id: &str,
        role: Role,
        party_id: &str,
        description: &str,
    ) -> Result<()> {
        with_pool!(self, pool, DB => {
            check_len("notes", description, MAX_LONG_CHARS)?;
            let done = sqlx::query(
                &DB::sql("UPDATE t_job SET f_description = ? WHERE f_job_id = ? AND f_role = ? AND f_party_id = ?")
            )
            .bind(description)
            .bind(job_id)
            .bind(role.as_str())
            .bind(party_id)
            .execute(pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    what: "job",
                    key: job_key(job_id, role, party_id),
                });
            }
            Ok(())
        })
    }

    /// The stored status of a job row, unparsed; `None` if the row does not exist.
    async fn job_status(&self, job_id: &str, role: Role, party_id: &str) -> Result<Option<String>> {
        with_pool!(self, pool, DB => {
            let status: Option<Text> = sqlx::query_scalar(
                &DB::sql("SELECT f_status FROM t_job WHERE f_job_id = ? AND f_role = ? AND f_party_id = ?")
            )
            .bind(job_id)
            .bind(role.as_str())
            .bind(party_id)
            .fetch_optional(pool)
            .await?;
            Ok(status.map(String::from))
        })
    }

    /// Moves a job row to `to` if FATE's rules allow it from the stored status
    /// ([`JobStatus::can_transition_to`]; a status never transitions to itself). Returns
    /// `false`, changing nothing, if they do not. Entering `running` sets `start_time = now_ms`;
    /// entering an end status sets `end_time = now_ms` and `elapsed` (NULL if the job never
    /// started). [`StoreError::NotFound`] if the row does not exist.
    pub async fn set_job_status_checked(
        &self,
        job_id: &str,
        role: Role,
        party_id: &str,
        to: JobStatus,
        now_ms: i64,
    ) -> Result<bool> {
        with_pool!(self, pool, DB => {
            let key = || job_key(job_id, role, party_id);
            for _ in 0..MAX_CAS_ATTEMPTS {
                let Some(stored) = self.job_status(job_id, role, party_id).await? else {
                    return Err(StoreError::NotFound {
                        what: "job",
                        key: key(),
                    });
                };
                let from = rows::job_status("t_job.f_status", &stored)?;
                if !from.can_transition_to(to) {
                    tracing::debug!(job = %key(), %from, %to, "job status transition refused");
                    return Ok(false);
                }
                let mut qb = QueryBuilder::<DB>::new("UPDATE t_job SET f_status = ");
                qb.push_bind(to.as_str());
                if to == JobStatus::Running {
                    qb.push(", f_start_time = ").push_bind(now_ms);
                }
                if to.is_end() {
                    qb.push(", f_end_time = ").push_bind(now_ms);
                    qb.push(", f_elapsed = ")
                        .push_bind(now_ms)
                        .push(" - f_start_time");
                }
                qb.push(" WHERE f_job_id = ")
                    .push_bind(job_id)
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
                what: "job status (concurrent updates)",
                key: key(),
        })
        })
    }
}

/// The `WHERE` conditions of a [`JobFilter`] (after `WHERE 1 = 1`), shared by the list and its
/// count so the two cannot disagree.
fn push_job_filter<'a, DB: sqlx::Database>(qb: &mut QueryBuilder<'a, DB>, filter: &'a JobFilter)
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(job_id) = &filter.job_id {
        qb.push(" AND f_job_id = ").push_bind(job_id.as_str());
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
    if let Some(text) = &filter.description {
        // LOWER on both sides: SQLite's and MariaDB's LIKE ignore ASCII case, PostgreSQL's does
        // not. `!` escapes the pattern's own `%`, `_` and `!` (a backslash would itself need
        // escaping in MySQL string literals).
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for c in text.chars() {
            if matches!(c, '%' | '_' | '!') {
                pattern.push('!');
            }
            pattern.push(c);
        }
        pattern.push('%');
        qb.push(" AND LOWER(f_description) LIKE LOWER(")
            .push_bind(pattern)
            .push(") ESCAPE '!'");
    }
}
