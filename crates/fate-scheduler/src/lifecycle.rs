//! Durable state across a node's life: what the scheduler does when it starts over the state a
//! previous run left (possibly killed mid-write), and when the node shuts down.
//!
//! **Tables.** A stored table has two halves written separately: its data (the computing
//! engine's table store, redb) and its metadata row (`MetaStore::put_table`). The metadata row
//! is the commit point: it is written only after the data, and a table exists (is listed, is
//! read by `reader`, blocks an upload without `overwrite`) only while its row does. Data
//! without a row is an interrupted write; at start it is removed, and so is a row whose data
//! is gone. Deleting a table ([`Scheduler::delete_table`]) removes the row first, then the
//! data, and works when only one half exists.
//!
//! **Jobs.** At start, a job that had started at this node (`ready` or `running`, or `waiting`
//! with a task already started or ended) is marked failed, and so are its running tasks
//! (FATE's `running → failed`; waiting tasks become `canceled`). A job that was still queued
//! (every row `waiting`, no task started) is run again, as FATE's scheduler picks up waiting
//! jobs: the initiator asks the other nodes to create it again first (a repeated create is
//! idempotent there).
//!
//! **Shutdown.** [`Scheduler::shutdown`] refuses new jobs, stops every running job with the
//! reason [`SHUTDOWN_REASON`] (its tasks end `canceled`, the other nodes are told to stop),
//! waits a grace period, then ends in the store whatever is still unfinished.

use crate::job::{Scheduler, SchedulerError};
use crate::site::set_outcome;
use fate_runtime::LogLevel;
use fate_store::{JobFilter, JobRecord, StoreError, TaskFilter};
use fate_types::{JobStatus, Party, TaskStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The reason recorded on jobs and tasks that [`Scheduler::shutdown`] ends.
pub const SHUTDOWN_REASON: &str = "node shut down";

/// The reason recorded on jobs and tasks that a restart found unfinished.
pub const RESTART_REASON: &str = "the node restarted while the job was unfinished";

/// What the start of a scheduler did to the state a previous run left
/// ([`Scheduler::recovery`]). Tables are named `namespace.name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Jobs that had started and were marked failed, with their unfinished tasks.
    pub failed_jobs: Vec<String>,
    /// Jobs that were still queued and run again.
    pub resumed_jobs: Vec<String>,
    /// Table data without a metadata row (an interrupted upload or task), removed.
    pub removed_data: Vec<String>,
    /// Metadata rows whose table data is gone, removed.
    pub removed_rows: Vec<String>,
}

fn table_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

fn task_error(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Store(StoreError::Invalid {
        field: "tables",
        reason: e.to_string(),
    })
}

impl Scheduler {
    /// What this scheduler's start found and settled.
    pub fn recovery(&self) -> Recovery {
        self.inner.recovery.get().cloned().unwrap_or_default()
    }

    /// Whether [`Scheduler::shutdown`] has been called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn check_accepting(&self) -> Result<(), SchedulerError> {
        if self.is_shutting_down() {
            // `Partner` is the error a caller already shows as "this node refused".
            return Err(SchedulerError::Partner(
                "this node is shutting down and takes no new jobs".into(),
            ));
        }
        Ok(())
    }

    /// Settles what a previous run left: jobs first (so no job is about to write a table),
    /// then tables, then queued jobs start again.
    pub(crate) async fn recover(&self) -> Result<Recovery, SchedulerError> {
        let store = &self.inner.store;
        let mut unfinished: BTreeMap<String, Vec<JobRecord>> = BTreeMap::new();
        for status in [JobStatus::Ready, JobStatus::Waiting, JobStatus::Running] {
            let filter = JobFilter {
                status: Some(status),
                ..Default::default()
            };
            for job in store.jobs(&filter).await? {
                unfinished.entry(job.job_id.clone()).or_default().push(job);
            }
        }
        let mut recovery = Recovery::default();
        let mut resume = Vec::new();
        for job_id in unfinished.into_keys() {
            let plan = match self.queued_plan(&job_id).await? {
                Ok(plan) => plan,
                Err(why) => {
                    tracing::warn!(job_id, why = %why, "Failing a job the node left unfinished.");
                    self.end_unfinished(&job_id, JobStatus::Failed, RESTART_REASON)
                        .await?;
                    self.schedule_log(&job_id, LogLevel::Error, RESTART_REASON);
                    recovery.failed_jobs.push(job_id);
                    continue;
                }
            };
            resume.push((job_id, plan));
        }
        let (removed_data, removed_rows) = self.reconcile_tables().await?;
        recovery.removed_data = removed_data;
        recovery.removed_rows = removed_rows;
        for (job_id, plan) in resume {
            tracing::info!(
                job_id,
                "Running again a job queued before the node restarted."
            );
            self.schedule_log(
                &job_id,
                LogLevel::Info,
                "the node restarted; the job was still queued and runs now",
            );
            self.resume(job_id.clone(), plan).await?;
            recovery.resumed_jobs.push(job_id);
        }
        Ok(recovery)
    }

    /// The plan of `job_id` if the job can simply run again: every row is `waiting` and every
    /// task's latest version is `waiting` or `success` (a queued job, or a rerun whose new task
    /// versions were recorded). `Err` says why not.
    async fn queued_plan(
        &self,
        job_id: &str,
    ) -> Result<Result<fate_dag::JobPlan, String>, SchedulerError> {
        let rows = self.jobs_of(job_id).await?;
        if let Some(j) = rows.iter().find(|j| j.status != JobStatus::Waiting) {
            return Ok(Err(format!("a row is {}", j.status)));
        }
        let tasks = self.inner.store.tasks(&task_filter(job_id)).await?;
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for t in &tasks {
            let v = latest.entry(t.task_name.as_str()).or_insert(t.task_version);
            *v = (*v).max(t.task_version);
        }
        if let Some(t) = tasks.iter().find(|t| {
            latest.get(t.task_name.as_str()) == Some(&t.task_version)
                && !matches!(t.status, TaskStatus::Waiting | TaskStatus::Success)
        }) {
            return Ok(Err(format!("task {} is {}", t.task_name, t.status)));
        }
        let dag: fate_dag::DagSchema = match serde_json::from_value(rows[0].dag.clone()) {
            Ok(d) => d,
            Err(e) => return Ok(Err(format!("its stored DAG is unreadable: {e}"))),
        };
        Ok(self.plan(&dag).map_err(|e| e.to_string()))
    }

    /// Starts a queued job again; the initiator first has the other nodes create it.
    async fn resume(&self, job_id: String, plan: fate_dag::JobPlan) -> Result<(), SchedulerError> {
        let scope = self.scope(&plan);
        if !scope.initiator || scope.remotes.is_empty() {
            self.spawn_run(job_id, plan, scope);
            return Ok(());
        }
        let user_name = self
            .jobs_of(&job_id)
            .await?
            .first()
            .map(|j| j.user_name.clone())
            .unwrap_or_default();
        // In the background: the other nodes may take a while to answer, and the node should
        // serve its API meanwhile.
        let this = self.clone();
        tokio::spawn(async move {
            match this
                .create_at_partners(&job_id, &plan, &scope, &user_name)
                .await
            {
                Ok(()) => this.spawn_run(job_id, plan, scope),
                Err(failure) => {
                    let reason = failure.reason;
                    this.schedule_log(&job_id, LogLevel::Error, &reason);
                    for party in &scope.rows {
                        let _ = this
                            .finish_job(&job_id, party, JobStatus::Failed, Some(reason.clone()))
                            .await;
                    }
                }
            }
        });
        Ok(())
    }

    /// Ends every unfinished row of `job_id` at this node as `status` with `reason`, and its
    /// unfinished tasks: running ones as `failed` (restart) or `canceled` (shutdown), waiting
    /// ones as `canceled` (FATE's transition rules).
    pub(crate) async fn end_unfinished(
        &self,
        job_id: &str,
        status: JobStatus,
        reason: &str,
    ) -> Result<(), SchedulerError> {
        let store = &self.inner.store;
        let now = fate_store::now_ms();
        for t in store.tasks(&task_filter(job_id)).await? {
            let to = match t.status {
                TaskStatus::Running if status == JobStatus::Failed => TaskStatus::Failed,
                TaskStatus::Running | TaskStatus::Waiting => TaskStatus::Canceled,
                _ => continue,
            };
            store
                .set_task_status_checked(
                    job_id,
                    &t.task_name,
                    t.task_version,
                    t.role,
                    &t.party_id,
                    to,
                    now,
                    Some(reason),
                )
                .await?;
        }
        for j in self.jobs_of(job_id).await? {
            if j.status.is_end() {
                continue;
            }
            let party = Party::new(j.role, j.party_id.as_str());
            self.finish_job(job_id, &party, status, Some(reason.to_string()))
                .await?;
        }
        Ok(())
    }

    /// Removes table data that has no metadata row and rows whose data is gone. Returns both
    /// lists as `namespace.name`. A table store that cannot be listed (a corrupt header) is
    /// logged and left alone: starting matters more than tidying.
    async fn reconcile_tables(&self) -> Result<(Vec<String>, Vec<String>), SchedulerError> {
        let computing = self.inner.computing.clone();
        let listed = tokio::task::spawn_blocking(move || computing.list())
            .await
            .map_err(task_error)?;
        let data: BTreeSet<(String, String)> = match listed {
            Ok(list) => list.into_iter().map(|(ns, name, _)| (ns, name)).collect(),
            Err(e) => {
                tracing::error!(error = %e, "Cannot list stored tables; not reconciling them with their metadata.");
                return Ok((Vec::new(), Vec::new()));
            }
        };
        let rows: BTreeSet<(String, String)> = self
            .inner
            .store
            .tables()
            .await?
            .into_iter()
            .map(|t| (t.namespace, t.name))
            .collect();
        let mut removed_data = Vec::new();
        for (ns, name) in data.difference(&rows) {
            let computing = self.inner.computing.clone();
            let (ns2, name2) = (ns.clone(), name.clone());
            tokio::task::spawn_blocking(move || computing.delete(&ns2, &name2))
                .await
                .map_err(task_error)?
                .map_err(task_error)?;
            tracing::warn!(
                namespace = ns,
                name,
                "Removed table data without a metadata row (an upload or task was interrupted)."
            );
            removed_data.push(table_name(ns, name));
        }
        let mut removed_rows = Vec::new();
        for (ns, name) in rows.difference(&data) {
            self.inner.store.delete_table(ns, name).await?;
            tracing::warn!(
                namespace = ns,
                name,
                "Removed table metadata whose data is gone."
            );
            removed_rows.push(table_name(ns, name));
        }
        Ok((removed_data, removed_rows))
    }

    /// Deletes table `namespace.name`: its metadata row first (from then on the table does not
    /// exist), then its data. Either half may be missing (an interrupted upload leaves data
    /// without a row). Returns whether there was anything to delete.
    pub async fn delete_table(&self, namespace: &str, name: &str) -> Result<bool, SchedulerError> {
        let had_row = self.inner.store.delete_table(namespace, name).await?;
        let computing = self.inner.computing.clone();
        let (ns, n) = (namespace.to_string(), name.to_string());
        let had_data = tokio::task::spawn_blocking(move || computing.delete(&ns, &n))
            .await
            .map_err(task_error)?
            .map_err(|e| task_error(format!("cannot remove {namespace}.{name}: {e}")))?;
        Ok(had_row || had_data)
    }

    /// Removes the data of `tables` that have no metadata row (best effort; what stays is
    /// removed at the next start).
    pub(crate) async fn remove_uncommitted(&self, tables: &[(String, String)]) {
        for (ns, name) in tables {
            if matches!(self.inner.store.table(ns, name).await, Ok(Some(_))) {
                continue;
            }
            let computing = self.inner.computing.clone();
            let (ns2, name2) = (ns.clone(), name.clone());
            let done = tokio::task::spawn_blocking(move || computing.delete(&ns2, &name2)).await;
            if !matches!(done, Ok(Ok(_))) {
                tracing::warn!(
                    namespace = ns,
                    name,
                    "Could not remove uncommitted table data."
                );
            }
        }
    }

    /// Shuts the scheduler down: from now on `submit`, partner creates and reruns are refused;
    /// every job running at this node is stopped with the reason [`SHUTDOWN_REASON`] (its
    /// running tasks end `canceled`, its waiting tasks too, the job `canceled`, all with that
    /// reason; the other nodes of the job are told to stop). Jobs that have not ended after
    /// `grace` (a component that ignores cancellation), and queued ones, are ended in the
    /// store with the same reason, and the initiator tells their other nodes to stop.
    ///
    /// Returns the ids of the jobs it ended. Call it once, before the node's transport to
    /// the other nodes goes away; a second call ends nothing new.
    pub async fn shutdown(&self, grace: Duration) -> Result<Vec<String>, SchedulerError> {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let mut ended: BTreeSet<String> = {
            let running = self.inner.running.lock();
            for r in running.values() {
                set_outcome(r, SHUTDOWN_REASON.to_string());
                r.stop_requested.store(true, Ordering::SeqCst);
                r.cancel.cancel();
            }
            running.keys().cloned().collect()
        };
        tracing::info!(
            n_jobs = ended.len(),
            "Shutting down: stopping running jobs."
        );
        let deadline = Instant::now() + grace;
        while !self.inner.running.lock().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let still_running: BTreeSet<String> = self.inner.running.lock().keys().cloned().collect();
        let mut unfinished = BTreeSet::new();
        for status in [JobStatus::Ready, JobStatus::Waiting, JobStatus::Running] {
            let filter = JobFilter {
                status: Some(status),
                ..Default::default()
            };
            for j in self.inner.store.jobs(&filter).await? {
                unfinished.insert(j.job_id);
            }
        }
        for job_id in &unfinished {
            if still_running.contains(job_id) {
                tracing::warn!(
                    job_id,
                    "A job did not end within the shutdown grace period; ending it in the store."
                );
            }
            // The runner of a job that ended by itself has told the other nodes already.
            let rows = self.jobs_of(job_id).await?;
            if let Ok(dag) = serde_json::from_value::<fate_dag::DagSchema>(rows[0].dag.clone())
                && let Ok(plan) = self.plan(&dag)
            {
                let scope = self.scope(&plan);
                if !scope.remotes.is_empty() {
                    self.stop_partners(job_id, &scope.remotes, SHUTDOWN_REASON)
                        .await;
                }
            }
            self.end_unfinished(job_id, JobStatus::Canceled, SHUTDOWN_REASON)
                .await?;
            self.schedule_log(job_id, LogLevel::Info, SHUTDOWN_REASON);
            ended.insert(job_id.clone());
        }
        Ok(ended.into_iter().collect())
    }
}

fn task_filter(job_id: &str) -> TaskFilter {
    TaskFilter {
        job_id: Some(job_id.to_string()),
        ..Default::default()
    }
}
