//! Cross-party scheduling: one node per party (fate-spec §3.1). The node that receives a job
//! (the initiator) records rows for every party, asks each other party's node to create the job
//! (`/v2/partner/job/create`), runs its own parties' tasks and polls the others
//! (`/v2/partner/job/collect`, FATE's `sync_type: poll`), copying their job and task statuses
//! into its store. Each other node runs its own parties' tasks and watches the initiator.
//!
//! A failure anywhere ends the job everywhere: a party whose job failed, or a node that stays
//! unreachable for `Site::partner_timeout`, makes the initiator cancel its own tasks and stop
//! every other party (`/v2/partner/job/stop`) with that party's error text; a node that loses
//! the initiator for as long ends its part of the job by itself.
//!
//! How a call reaches another node ([`Partners`]) is the binary's business (FATE relays REST
//! calls over the routers' `unaryCall`); the scheduler never names a transport.

use crate::job::{Running, Scheduler, SchedulerError};
use fate_dag::JobPlan;
use fate_store::{JobFilter, JobRecord, TaskFilter};
use fate_types::{JobStatus, Party, Role, TaskStatus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Partner endpoints (FATE-Flow's `/v2/partner/*`, served by `fate-api`).
pub mod paths {
    /// Create (and start) the job at the receiving node.
    pub const JOB_CREATE: &str = "/v2/partner/job/create";
    /// Stop the job at the receiving node.
    pub const JOB_STOP: &str = "/v2/partner/job/stop";
    /// Rerun named tasks of the job at the receiving node.
    pub const JOB_RERUN: &str = "/v2/partner/job/rerun";
    /// The receiving node's job and task statuses (FATE's `sync_type: poll`).
    pub const JOB_COLLECT: &str = "/v2/partner/job/collect";
    /// Which parties the receiving node hosts (for `fate doctor`).
    pub const PING: &str = "/v2/partner/ping";
}

/// How this node reaches the nodes of other parties.
pub trait Partners: Send + Sync + 'static {
    /// Runs the partner endpoint `path` with a JSON `body` at the node hosting `party_id` and
    /// returns the `data` of its reply. Blocking. The error says which party and which hop
    /// failed, or carries the other node's error message.
    fn call(
        &self,
        job_id: &str,
        party_id: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, String>;

    /// Like [`Partners::call`], with FATE's code when the other node answered with a refusal
    /// (1000 for a job it found invalid). The default knows no codes.
    fn call_coded(
        &self,
        job_id: &str,
        party_id: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, PartnerError> {
        self.call(job_id, party_id, path, body, timeout)
            .map_err(|message| PartnerError {
                message,
                code: None,
            })
    }
}

/// A partner call that failed: the text names the party and the hop; `code` is the other
/// node's FATE code when it answered with a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerError {
    pub message: String,
    pub code: Option<i64>,
}

impl From<String> for PartnerError {
    /// A failure without a code (the other node was not reached, or answered no code).
    fn from(message: String) -> Self {
        PartnerError {
            message,
            code: None,
        }
    }
}

/// Why the other nodes did not all create a job.
pub(crate) struct CreateFailure {
    /// Names every party that failed and why.
    pub(crate) reason: String,
    /// Some party found the job itself invalid (FATE's 1000, e.g. an engine setting it cannot
    /// honour): the job is not to exist anywhere, rather than exist as failed.
    pub(crate) invalid: bool,
}

/// The parties this node hosts and how it reaches the others.
#[derive(Clone)]
pub struct Site {
    /// Party ids whose tasks run on this node (all their roles).
    pub party_ids: BTreeSet<String>,
    /// Calls to other nodes.
    pub partners: Arc<dyn Partners>,
    /// How often a running job polls the other nodes.
    pub poll_interval: Duration,
    /// How long another node may stay unreachable before the job fails. Defaults to the data
    /// plane's federation timeout ([`fate_federation::DEFAULT_TIMEOUT`], 600 s): a partition
    /// the tasks' own waits would survive does not fail the job either.
    pub partner_timeout: Duration,
    /// Longest single call to another node.
    pub call_timeout: Duration,
    /// FATE's site permissions: when on, a partner may create a job here only with the
    /// components and datasets granted to its party (`/v2/permission/resource/grant`).
    pub permission: bool,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("party_ids", &self.party_ids)
            .field("poll_interval", &self.poll_interval)
            .field("partner_timeout", &self.partner_timeout)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// A site hosting `party_ids` with default timings (poll 0.5 s, a call at most 10 s,
    /// unreachable for the federation timeout of 600 s ends a job).
    pub fn new(party_ids: impl IntoIterator<Item = String>, partners: Arc<dyn Partners>) -> Self {
        Site {
            party_ids: party_ids.into_iter().collect(),
            partners,
            poll_interval: Duration::from_millis(500),
            partner_timeout: fate_federation::DEFAULT_TIMEOUT,
            call_timeout: Duration::from_secs(10),
            permission: false,
        }
    }
}

/// The parties of one job as this node sees them.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    /// This node received the job and drives it.
    pub initiator: bool,
    /// Party ids of the nodes this node talks to about the job: every other node for the
    /// initiator, the initiator for the others. Empty in standalone.
    pub remotes: Vec<String>,
    /// Parties whose job and task rows this node keeps.
    pub rows: Vec<Party>,
}

fn status_text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

impl Scheduler {
    fn site(&self) -> Option<&Site> {
        self.inner.config.site.as_ref()
    }

    /// Whether tasks of `party_id` run on this node.
    pub(crate) fn hosts(&self, party_id: &str) -> bool {
        self.site().is_none_or(|s| s.party_ids.contains(party_id))
    }

    /// Whether `party`'s tasks run on this node: its party id is hosted, or it is the node's
    /// own `local` party (uploads).
    pub(crate) fn hosts_party(&self, party: &Party) -> bool {
        party.role == Role::Local || self.hosts(party.party_id.as_str())
    }

    /// The party ids this node hosts (empty in standalone, where it hosts every party).
    pub fn hosted_party_ids(&self) -> Vec<String> {
        self.site()
            .map(|s| s.party_ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn scope(&self, plan: &JobPlan) -> Scope {
        let Some(_) = self.site() else {
            return Scope {
                initiator: true,
                remotes: Vec::new(),
                rows: plan.parties.clone(),
            };
        };
        let initiator_party = plan.initiator.party_id.to_string();
        if self.hosts_party(&plan.initiator) {
            let remotes: BTreeSet<String> = plan
                .parties
                .iter()
                .filter(|p| !self.hosts_party(p))
                .map(|p| p.party_id.to_string())
                .collect();
            Scope {
                initiator: true,
                remotes: remotes.into_iter().collect(),
                rows: plan.parties.clone(),
            }
        } else {
            Scope {
                initiator: false,
                remotes: vec![initiator_party],
                rows: plan
                    .parties
                    .iter()
                    .filter(|p| self.hosts_party(p))
                    .cloned()
                    .collect(),
            }
        }
    }

    /// Calls `path` at the node of `party_id` on a blocking thread.
    pub(crate) async fn partner_call(
        &self,
        job_id: &str,
        party_id: &str,
        path: &'static str,
        body: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, String> {
        self.partner_call_coded(job_id, party_id, path, body, timeout)
            .await
            .map_err(|e| e.message)
    }

    /// [`Scheduler::partner_call`] keeping the refusing node's code.
    pub(crate) async fn partner_call_coded(
        &self,
        job_id: &str,
        party_id: &str,
        path: &'static str,
        body: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, PartnerError> {
        let Some(site) = self.site() else {
            return Err(PartnerError {
                message: "this node runs standalone and has no partners".into(),
                code: None,
            });
        };
        let partners = site.partners.clone();
        let timeout = timeout.unwrap_or(site.call_timeout);
        let (job_id, party_id) = (job_id.to_string(), party_id.to_string());
        tokio::task::spawn_blocking(move || {
            partners.call_coded(&job_id, &party_id, path, &body, timeout)
        })
        .await
        .unwrap_or_else(|e| {
            Err(PartnerError {
                message: format!("partner call thread ended abnormally: {e}"),
                code: None,
            })
        })
    }

    /// Calls the partner endpoint `path` at the node of `party_id` for online serving (the
    /// guest asking a host for its partial scores, or to load its part of a model), within
    /// `timeout`. Not about a job: the relayed packet's session is `serving`.
    pub async fn call_partner(
        &self,
        party_id: &str,
        path: &'static str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, PartnerError> {
        self.partner_call_coded("serving", party_id, path, body, Some(timeout))
            .await
    }

    /// Asks every other party's node to create and start the job (fate-spec §3.1 step 2).
    /// On a failure, the nodes that did create it are told to stop, and the error names the
    /// party that failed.
    pub(crate) async fn create_at_partners(
        &self,
        job_id: &str,
        plan: &JobPlan,
        scope: &Scope,
        user_name: &str,
    ) -> Result<(), CreateFailure> {
        let body = json!({
            "job_id": job_id,
            "dag": plan.dag,
            "user_name": user_name,
        });
        let mut calls = tokio::task::JoinSet::new();
        for party in &scope.remotes {
            let (this, body, party, job_id) = (
                self.clone(),
                body.clone(),
                party.clone(),
                job_id.to_string(),
            );
            calls.spawn(async move {
                let r = this
                    .partner_call_coded(&job_id, &party, paths::JOB_CREATE, body, None)
                    .await;
                (party, r)
            });
        }
        let results = calls.join_all().await;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(p, r)| {
                r.as_ref()
                    .err()
                    .map(|e| format!("party {p}: {}", e.message))
            })
            .collect();
        let invalid = results.iter().any(|(_, r)| {
            r.as_ref()
                .err()
                .is_some_and(|e| e.code == Some(fate_types::RetCode::JobParams.code() as i64))
        });
        if failed.is_empty() {
            return Ok(());
        }
        let created: Vec<String> = results
            .into_iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(p, _)| p)
            .collect();
        let reason = format!("the job could not be created at {}", failed.join("; "));
        self.stop_partners(job_id, &created, &reason).await;
        Err(CreateFailure { reason, invalid })
    }

    /// Tells `parties` to stop the job (best effort: a party that ended already or cannot be
    /// reached is skipped; the watcher of each node ends its part anyway).
    pub(crate) async fn stop_partners(&self, job_id: &str, parties: &[String], reason: &str) {
        let mut calls = tokio::task::JoinSet::new();
        for party in parties {
            let body = json!({"job_id": job_id, "reason": reason});
            let (this, party, job_id) = (self.clone(), party.clone(), job_id.to_string());
            calls.spawn(async move {
                if let Err(e) = this
                    .partner_call(&job_id, &party, paths::JOB_STOP, body, None)
                    .await
                {
                    tracing::warn!(job_id, party, error = %e, "Could not stop the job at a partner.");
                }
            });
        }
        calls.join_all().await;
    }

    /// Watches the other nodes of a running job until each has ended it with success (then
    /// `Ok`), or one reports a failure or stays unreachable for `partner_timeout` (then `Err`
    /// with the reason). The initiator also copies their statuses into its store.
    pub(crate) async fn watch(&self, job_id: &str, scope: &Scope) -> Result<(), String> {
        let Some(site) = self.site().cloned() else {
            return Ok(());
        };
        let mut last_ok: BTreeMap<String, Instant> = scope
            .remotes
            .iter()
            .map(|p| (p.clone(), Instant::now()))
            .collect();
        let mut done: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::time::sleep(site.poll_interval).await;
            for party in &scope.remotes {
                if done.contains(party) {
                    continue;
                }
                let reply = self
                    .partner_call(
                        job_id,
                        party,
                        paths::JOB_COLLECT,
                        json!({"job_id": job_id}),
                        Some(site.call_timeout.min(site.partner_timeout)),
                    )
                    .await;
                match reply {
                    Ok(data) => {
                        last_ok.insert(party.clone(), Instant::now());
                        if scope.initiator {
                            self.sync_rows(job_id, &data).await;
                        }
                        let jobs = data
                            .get("jobs")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        if jobs.is_empty() {
                            return Err(format!("party {party} has no record of job {job_id}"));
                        }
                        for j in &jobs {
                            let status = status_text(j, "status");
                            if matches!(status.as_str(), "failed" | "canceled" | "timeout") {
                                let who = format!(
                                    "{}:{}",
                                    status_text(j, "role"),
                                    status_text(j, "party_id")
                                );
                                let error = status_text(j, "error");
                                return Err(if error.is_empty() {
                                    format!("party {who} ended the job as {status}")
                                } else {
                                    format!("party {who} ended the job as {status}: {error}")
                                });
                            }
                        }
                        if jobs.iter().all(|j| status_text(j, "status") == "success") {
                            done.insert(party.clone());
                        }
                    }
                    Err(e) => {
                        let since = last_ok[party].elapsed();
                        if since >= site.partner_timeout {
                            return Err(format!(
                                "party {party} has been unreachable for {:.0} s: {e}",
                                since.as_secs_f64()
                            ));
                        }
                        tracing::debug!(job_id, party, error = %e, "Partner poll failed; retrying.");
                    }
                }
            }
            if done.len() == scope.remotes.len() {
                return Ok(());
            }
        }
    }

    /// One last poll of every remote party so the initiator's copy shows how they ended.
    pub(crate) async fn sync_once(&self, job_id: &str, parties: &[String]) {
        for party in parties {
            if let Ok(data) = self
                .partner_call(
                    job_id,
                    party,
                    paths::JOB_COLLECT,
                    json!({"job_id": job_id}),
                    Some(Duration::from_secs(3)),
                )
                .await
            {
                self.sync_rows(job_id, &data).await;
            }
        }
    }

    /// Copies another node's job and task statuses into this node's rows (checked
    /// transitions; a status this node cannot move to is left as it is).
    async fn sync_rows(&self, job_id: &str, data: &Value) {
        let store = &self.inner.store;
        let now = chrono::Utc::now().timestamp_millis();
        for t in data
            .get("tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Ok(role), Ok(status)) = (
                status_text(t, "role").parse::<Role>(),
                status_text(t, "status").parse::<TaskStatus>(),
            ) else {
                continue;
            };
            let party_id = status_text(t, "party_id");
            let name = status_text(t, "task_name");
            let version = t.get("task_version").and_then(Value::as_i64).unwrap_or(0);
            let error = t.get("error").and_then(Value::as_str);
            let current = store
                .tasks(&TaskFilter {
                    job_id: Some(job_id.to_string()),
                    task_name: Some(name.clone()),
                    role: Some(role),
                    party_id: Some(party_id.clone()),
                    ..Default::default()
                })
                .await
                .ok()
                .and_then(|rows| rows.into_iter().find(|r| r.task_version == version));
            let Some(current) = current else { continue };
            if current.status == status {
                continue;
            }
            if current.status == TaskStatus::Waiting && status.is_end() {
                let _ = store
                    .set_task_status_checked(
                        job_id,
                        &name,
                        version,
                        role,
                        &party_id,
                        TaskStatus::Running,
                        now,
                        None,
                    )
                    .await;
            }
            let _ = store
                .set_task_status_checked(
                    job_id, &name, version, role, &party_id, status, now, error,
                )
                .await;
        }
        for j in data
            .get("jobs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Ok(role), Ok(status)) = (
                status_text(j, "role").parse::<Role>(),
                status_text(j, "status").parse::<JobStatus>(),
            ) else {
                continue;
            };
            let party_id = status_text(j, "party_id");
            let update = fate_store::JobUpdate {
                progress: j
                    .get("progress")
                    .and_then(Value::as_i64)
                    .map(|p| p.clamp(0, 100) as i32),
                error: j
                    .get("error")
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty())
                    .map(String::from),
                ..Default::default()
            };
            let _ = store.update_job(job_id, role, &party_id, &update).await;
            let _ = store
                .set_job_status_checked(job_id, role, &party_id, status, now)
                .await;
        }
    }

    /// `/v2/partner/job/create`: records the job for the parties this node hosts and starts
    /// running their tasks.
    ///
    /// Only the job's initiator may create it here: `from_party` is the calling party, which
    /// the site router has checked against its certificate under mutual TLS.
    /// FATE's permission hook (`fate_flow/hook/flow/permission.py`): every component this
    /// node runs for the job, and every table its readers read here, must be granted to the
    /// creating party. `*` grants every component or every dataset.
    async fn check_permission(
        &self,
        from_party: &str,
        job_id: &str,
        plan: &JobPlan,
    ) -> Result<(), SchedulerError> {
        let grants = self.store().site_permissions(from_party).await?;
        let granted = |kind: &str, value: &str| {
            grants
                .iter()
                .any(|g| g.kind == kind && (g.value == "*" || g.value == value))
        };
        for task in &plan.tasks {
            let here: Vec<&Party> = task
                .parties
                .iter()
                .filter(|p| self.hosts_party(p))
                .collect();
            if here.is_empty() {
                continue;
            }
            if !granted("component", &task.component) {
                return Err(SchedulerError::Permission(format!(
                    "No Permission: party {from_party} may not create job {job_id}: component                      {} (task {}) is not granted to it at this node                      (/v2/permission/resource/grant)",
                    task.component, task.name
                )));
            }
            for party in here {
                let Some(params) = task.parameters.get(party) else {
                    continue;
                };
                let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_string);
                if let (Some(namespace), Some(name)) = (text("namespace"), text("name"))
                    && !granted("dataset", &format!("{namespace}|{name}"))
                {
                    return Err(SchedulerError::Permission(format!(
                        "No Permission: party {from_party} may not create job {job_id}: dataset                          {namespace}.{name} (task {}, {}) is not granted to it at this node",
                        task.name, party
                    )));
                }
            }
        }
        Ok(())
    }

    pub async fn accept_job(
        &self,
        from_party: &str,
        job_id: &str,
        dag: Value,
        user_name: &str,
    ) -> Result<(), SchedulerError> {
        if self.site().is_none() {
            return Err(SchedulerError::Partner(
                "this node runs standalone and does not take jobs from other parties".into(),
            ));
        }
        self.check_accepting()?;
        // The job id becomes a directory of the logs dir: a partner may send only a plain id.
        fate_types::check_job_id("job_id", job_id)
            .map_err(|e| SchedulerError::Partner(e.to_string()))?;
        let dag: fate_dag::DagSchema = serde_json::from_value(dag).map_err(|e| {
            SchedulerError::Partner(format!("the initiator sent an unreadable DAG: {e}"))
        })?;
        fate_dag::parse::check_size(&dag)?;
        let plan = self.plan(&dag)?;
        // A partner's job names tables, never files: it may not run tasks as this node's
        // `local` party (uploads read a path of this node).
        if let Some(task) = plan
            .tasks
            .iter()
            .find(|t| t.component == "upload" || t.parties.iter().any(|p| p.role == Role::Local))
        {
            return Err(SchedulerError::Partner(format!(
                "party {from_party} may not create job {job_id}: task {} runs `{}` as this node's \
                 local party; a job from another party may name tables, never files",
                task.name, task.component
            )));
        }
        if self.site().is_some_and(|s| s.permission) {
            self.check_permission(from_party, job_id, &plan).await?;
        }
        if plan.initiator.party_id.as_str() != from_party {
            return Err(SchedulerError::Partner(format!(
                "party {from_party} may not create job {job_id}: its initiator is party {}",
                plan.initiator.party_id
            )));
        }
        let scope = self.scope(&plan);
        if scope.initiator || scope.rows.is_empty() {
            return Err(SchedulerError::Partner(format!(
                "this node hosts parties {:?}, which are {} job {job_id}",
                self.hosted_party_ids(),
                if scope.initiator {
                    "the initiator of"
                } else {
                    "not in"
                }
            )));
        }
        if !self.jobs_matching(job_id).await?.is_empty() {
            // A retried create: the first one took effect.
            return Ok(());
        }
        // This node's parties' engine settings: refused here, the job is created nowhere.
        self.check_engines(&plan).await?;
        self.record_job(job_id, &plan, &scope, user_name).await?;
        self.spawn_run(job_id.to_string(), plan, scope);
        Ok(())
    }

    pub(crate) async fn jobs_matching(
        &self,
        job_id: &str,
    ) -> Result<Vec<JobRecord>, SchedulerError> {
        Ok(self
            .inner
            .store
            .jobs(&JobFilter {
                job_id: Some(job_id.to_string()),
                ..Default::default()
            })
            .await?)
    }

    /// `/v2/partner/job/collect`: this node's job and (latest) task rows of the parties it
    /// hosts.
    pub async fn collect(&self, from_party: &str, job_id: &str) -> Result<Value, SchedulerError> {
        let rows = self.jobs_of(job_id).await?;
        self.check_member(&rows, from_party, job_id)?;
        let jobs: Vec<Value> = rows
            .into_iter()
            .filter(|j| self.hosts_party(&Party::new(j.role, j.party_id.as_str())))
            .map(|j| {
                json!({"role": j.role, "party_id": j.party_id, "status": j.status,
                       "progress": j.progress, "error": j.error.unwrap_or_default()})
            })
            .collect();
        let tasks: Vec<Value> = self
            .inner
            .store
            .tasks(&TaskFilter {
                job_id: Some(job_id.to_string()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|t| self.hosts_party(&Party::new(t.role, t.party_id.as_str())))
            .map(|t| {
                json!({"task_name": t.task_name, "task_version": t.task_version,
                       "role": t.role, "party_id": t.party_id, "status": t.status,
                       "error": t.error.unwrap_or_default()})
            })
            .collect();
        Ok(json!({"jobs": jobs, "tasks": tasks}))
    }

    /// `/v2/partner/job/stop`: the initiator (or a partner) ends the job here. Stopping a job
    /// that has ended already is not an error.
    pub async fn stop_by_partner(
        &self,
        job_id: &str,
        from_party: &str,
        reason: &str,
    ) -> Result<(), SchedulerError> {
        let rows = self.jobs_of(job_id).await?;
        self.check_member(&rows, from_party, job_id)?;
        let running = self.inner.running.lock();
        if let Some(r) = running.get(job_id) {
            set_outcome(r, format!("stopped by party {from_party}: {reason}"));
            r.stop_requested
                .store(true, std::sync::atomic::Ordering::SeqCst);
            r.cancel.cancel();
        }
        Ok(())
    }

    /// `/v2/partner/job/rerun`: reruns the named tasks (the initiator decides which).
    pub async fn rerun_by_partner(
        &self,
        from_party: &str,
        job_id: &str,
        tasks: &[String],
    ) -> Result<(), SchedulerError> {
        let rows = self.jobs_of(job_id).await?;
        if rows.iter().all(|j| j.initiator_party_id != from_party) {
            return Err(SchedulerError::Partner(format!(
                "party {from_party} may not rerun job {job_id}: only its initiator may"
            )));
        }
        self.rerun_tasks(job_id, Some(tasks)).await.map(|_| ())
    }

    /// Refuses a caller that is not a party of the job (its rows list the job's parties).
    fn check_member(
        &self,
        rows: &[JobRecord],
        from_party: &str,
        job_id: &str,
    ) -> Result<(), SchedulerError> {
        let member = rows.iter().any(|j| {
            j.initiator_party_id == from_party
                || j.parties
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("party_id").and_then(Value::as_array))
                    .flatten()
                    .any(|id| id.as_str() == Some(from_party))
        });
        if member {
            Ok(())
        } else {
            Err(SchedulerError::Partner(format!(
                "party {from_party} is not a party of job {job_id}"
            )))
        }
    }
}

/// Records why a job ends, unless a reason is recorded already.
pub(crate) fn set_outcome(running: &Running, reason: String) {
    let mut outcome = running.outcome.lock();
    if outcome.is_none() {
        *outcome = Some(reason);
    }
}
