//! The job runner.

use crate::logs::{self, LogLine};
use crate::site::Scope;
use fate_computing::Computing;
use fate_dag::{InputSource, JobPlan, PlanError, TaskPlan};
use fate_federation::{CancelToken, Federation, FederationConfig, Transport};
use fate_runtime::{
    Catalog, ComponentError, Ctx, InputArtifact, LogLevel, Registry, Schema, TableInfo, TaskLog,
};
use fate_store::{
    JobFilter, JobRecord, MetaStore, MetricRecord, ModelRecord, OutputDataRecord, StoreError,
    TableRecord, TaskFilter, TaskRecord,
};
use fate_types::{JobIdGenerator, JobStatus, Party, Role, TaskStatus, federation_session_id};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("job {0} not found")]
    JobNotFound(String),
    #[error("job {job_id} is {status}: {action} is not possible")]
    BadState {
        job_id: String,
        status: JobStatus,
        action: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another party's node refused or could not be reached; the text names the party.
    #[error("{0}")]
    Partner(String),
    /// A partner lacks a site permission for what its job asks of this node (FATE's 5005).
    #[error("{0}")]
    Permission(String),
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Where job and task logs are written.
    pub logs_dir: PathBuf,
    /// Federation limits and the `get` timeout for tasks.
    pub federation: FederationConfig,
    /// The parties this node hosts and how it reaches the others' nodes; `None` hosts every
    /// party in this process (standalone).
    pub site: Option<crate::site::Site>,
    /// The only directories a request may make this node read or write files in (uploads,
    /// binds, model exports), and the largest file it reads.
    pub data_roots: fate_runtime::DataRoots,
    /// The engines a job may ask for per party; `None`: every job runs on the scheduler's
    /// computing, and may ask only for its engine ([`crate::engines::SingleEngine`]).
    pub engines: Option<Arc<dyn crate::engines::JobEngines>>,
}

/// What `submit` returns (FATE's `{job_id, data: {model_id, model_version}}`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Submitted {
    pub job_id: String,
    pub model_id: String,
    pub model_version: String,
}

pub(crate) struct Running {
    pub(crate) cancel: CancelToken,
    pub(crate) stop_requested: Arc<AtomicBool>,
    /// Why the job ends early when the reason is not a local task's failure: another party
    /// failed, became unreachable, or the initiator stopped the job.
    pub(crate) outcome: Arc<Mutex<Option<String>>>,
}

pub(crate) struct Inner {
    pub(crate) store: MetaStore,
    pub(crate) computing: Computing,
    pub(crate) engines: Arc<dyn crate::engines::JobEngines>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) registry: Registry,
    pub(crate) ids: JobIdGenerator,
    pub(crate) config: SchedulerConfig,
    pub(crate) running: Mutex<HashMap<String, Running>>,
    /// Set by `shutdown`: no job is accepted or started any more.
    pub(crate) shutting_down: AtomicBool,
    /// What the start of this scheduler did to the state a previous run left.
    pub(crate) recovery: std::sync::OnceLock<crate::lifecycle::Recovery>,
}

/// Schedules jobs for every party this node hosts (in standalone mode: all of them).
#[derive(Clone)]
pub struct Scheduler {
    pub(crate) inner: Arc<Inner>,
}

/// How long a rerun waits for the runner of a job whose rows have all ended to finish.
const RUNNER_EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long `stop` waits for the job's runner to end its tasks (as `fate job stop` waits).
const STOP_WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn party_of(role: Role, party_id: &str) -> Party {
    Party::new(role, party_id)
}

impl Scheduler {
    /// Creates the scheduler and settles what a previous run of the node left unfinished
    /// (see [`Scheduler::recovery`]): a job that had started is marked failed with a message
    /// saying the node restarted, and so are its unfinished tasks; a job still queued
    /// (`waiting`, no task started) runs again; table data without its metadata row, and rows
    /// without data, are removed.
    pub async fn new(
        store: MetaStore,
        computing: Computing,
        transport: Arc<dyn Transport>,
        registry: Registry,
        config: SchedulerConfig,
    ) -> Result<Self, SchedulerError> {
        let engines = config
            .engines
            .clone()
            .unwrap_or_else(|| Arc::new(crate::engines::SingleEngine(computing.clone())) as Arc<_>);
        let s = Scheduler {
            inner: Arc::new(Inner {
                store,
                computing,
                engines,
                transport,
                registry,
                ids: JobIdGenerator::new(),
                config,
                running: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                recovery: std::sync::OnceLock::new(),
            }),
        };
        let recovery = s.recover().await?;
        let _ = s.inner.recovery.set(recovery);
        Ok(s)
    }

    pub fn store(&self) -> &MetaStore {
        &self.inner.store
    }

    pub fn computing(&self) -> &Computing {
        &self.inner.computing
    }

    /// Where requests may name files (uploads, binds, exports).
    pub fn data_roots(&self) -> &fate_runtime::DataRoots {
        &self.inner.config.data_roots
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Validates and plans a DAG without running it.
    pub fn plan(&self, dag: &fate_dag::DagSchema) -> Result<JobPlan, SchedulerError> {
        let plan = fate_dag::plan(dag, &self.inner.registry.specs())?;
        check_task_params(&self.inner.registry, &plan)?;
        Ok(plan)
    }

    /// Plans, records and starts a job. Returns once the job is recorded; the job runs in the
    /// background (poll with `store().jobs(..)` or `wait`).
    pub async fn submit(
        &self,
        dag: fate_dag::DagSchema,
        user_name: &str,
    ) -> Result<Submitted, SchedulerError> {
        self.check_accepting()?;
        let plan = self.plan(&dag)?;
        let scope = self.scope(&plan);
        if !scope.initiator {
            return Err(SchedulerError::Partner(format!(
                "the initiator {} is not hosted by this node (it hosts parties {:?}): submit the \
                 job to the initiator's node",
                plan.initiator,
                self.hosted_party_ids()
            )));
        }
        // Each party's engine settings are checked where it runs: here for this node's.
        self.check_engines(&plan).await?;
        let job_id = self.inner.ids.next();
        let submitted = self.record_job(&job_id, &plan, &scope, user_name).await?;
        if !scope.remotes.is_empty()
            && let Err(failure) = self
                .create_at_partners(&job_id, &plan, &scope, user_name)
                .await
        {
            let reason = failure.reason;
            if failure.invalid {
                // A party found the job invalid: it exists nowhere, as when this node refuses
                // it (the parties that had created it were told to stop).
                self.inner.store.delete_job(&job_id).await?;
                return Err(SchedulerError::Partner(reason));
            }
            self.schedule_log(&job_id, LogLevel::Error, &reason);
            for party in &scope.rows {
                self.finish_job(&job_id, party, JobStatus::Failed, Some(reason.clone()))
                    .await?;
            }
            return Err(SchedulerError::Partner(reason));
        }
        self.spawn_run(job_id, plan, scope);
        Ok(submitted)
    }

    /// Records the job and its tasks (status waiting) for the parties whose rows this node
    /// keeps.
    pub(crate) async fn record_job(
        &self,
        job_id: &str,
        plan: &JobPlan,
        scope: &Scope,
        user_name: &str,
    ) -> Result<Submitted, SchedulerError> {
        let job_id = job_id.to_string();
        let model_id = plan.conf.model_id.clone().unwrap_or_else(|| job_id.clone());
        let model_version = plan
            .conf
            .model_version
            .clone()
            .unwrap_or_else(|| "0".to_string());
        let now = now_ms();
        let dag_json = serde_json::to_value(&plan.dag).unwrap_or_default();
        let parties_json = serde_json::to_value(&plan.dag.dag.parties).unwrap_or_default();
        for party in &scope.rows {
            let rec = JobRecord {
                job_id: job_id.clone(),
                role: party.role,
                party_id: party.party_id.to_string(),
                status: JobStatus::Ready,
                progress: 0,
                dag: dag_json.clone(),
                model_id: model_id.clone(),
                model_version: model_version.clone(),
                initiator_party_id: plan.initiator.party_id.to_string(),
                scheduler_party_id: plan.scheduler_party_id.to_string(),
                parties: parties_json.clone(),
                description: String::new(),
                user_name: user_name.to_string(),
                create_time: now,
                start_time: None,
                end_time: None,
                elapsed: None,
                error: None,
                cores: self.inner.computing.cores() as i32,
            };
            self.inner.store.insert_job(&rec).await?;
        }
        for task in &plan.tasks {
            self.insert_task_rows(&job_id, task, &scope.rows, 0, now)
                .await?;
        }
        for party in &scope.rows {
            self.inner
                .store
                .set_job_status_checked(
                    &job_id,
                    party.role,
                    party.party_id.as_str(),
                    JobStatus::Waiting,
                    now_ms(),
                )
                .await?;
        }
        Ok(Submitted {
            job_id,
            model_id,
            model_version,
        })
    }

    async fn insert_task_rows(
        &self,
        job_id: &str,
        task: &TaskPlan,
        rows: &[Party],
        version: i64,
        now: i64,
    ) -> Result<(), SchedulerError> {
        for party in task.parties.iter().filter(|p| rows.contains(p)) {
            let params = task.parameters_for(party).cloned().unwrap_or_default();
            let rec = TaskRecord {
                job_id: job_id.to_string(),
                task_id: format!("{job_id}_{}", task.name),
                task_name: task.name.clone(),
                task_version: version,
                component: task.component.clone(),
                role: party.role,
                party_id: party.party_id.to_string(),
                status: TaskStatus::Waiting,
                parameters: serde_json::Value::Object(params),
                create_time: now,
                start_time: None,
                end_time: None,
                elapsed: None,
                error: None,
            };
            self.inner.store.insert_task(&rec).await?;
        }
        Ok(())
    }

    pub(crate) fn spawn_run(&self, job_id: String, plan: JobPlan, scope: Scope) {
        let cancel = CancelToken::default();
        let stop_requested = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(None));
        self.inner.running.lock().insert(
            job_id.clone(),
            Running {
                cancel: cancel.clone(),
                stop_requested: stop_requested.clone(),
                outcome: outcome.clone(),
            },
        );
        let this = self.clone();
        tokio::spawn(async move {
            let run = JobRun {
                job_id: &job_id,
                plan: &plan,
                scope: &scope,
                cancel: &cancel,
                stop_requested: &stop_requested,
                outcome: &outcome,
            };
            if let Err(e) = this.run_job(run).await {
                tracing::error!(job_id, error = %e, "Job runner failed.");
                this.schedule_log(&job_id, LogLevel::Error, &format!("job runner failed: {e}"));
                for party in &scope.rows {
                    let _ = this
                        .finish_job(&job_id, party, JobStatus::Failed, Some(e.to_string()))
                        .await;
                }
            }
            this.inner.running.lock().remove(&job_id);
            // Frames are kept per federation session (`{job_id}_{task}_{version}`), not per
            // job: drop every session of every task version this job ran.
            let rows = this
                .inner
                .store
                .tasks(&TaskFilter {
                    job_id: Some(job_id.clone()),
                    ..Default::default()
                })
                .await
                .unwrap_or_default();
            let tasks = plan.tasks.iter().map(|t| (t.name.as_str(), 0)).chain(
                rows.iter()
                    .map(|t| (t.task_name.as_str(), t.task_version.max(0) as u32)),
            );
            fate_federation::cleanup_job(this.inner.transport.as_ref(), &job_id, tasks);
        });
    }

    pub(crate) fn schedule_log(&self, job_id: &str, level: LogLevel, msg: &str) {
        let path = logs::schedule_log_path(&self.inner.config.logs_dir, job_id);
        let local = Party::new(Role::Local, "0");
        if let Ok(log) = TaskLog::new(job_id, &local, "schedule", path) {
            log.log(level, msg);
        }
    }

    pub(crate) async fn finish_job(
        &self,
        job_id: &str,
        party: &Party,
        status: JobStatus,
        error: Option<String>,
    ) -> Result<(), SchedulerError> {
        let store = &self.inner.store;
        // Error and progress first: a client that sees the end status must also see why.
        let update = fate_store::JobUpdate {
            error,
            progress: if status == JobStatus::Success {
                Some(100)
            } else {
                None
            },
            ..Default::default()
        };
        store
            .update_job(job_id, party.role, party.party_id.as_str(), &update)
            .await?;
        store
            .set_job_status_checked(
                job_id,
                party.role,
                party.party_id.as_str(),
                status,
                now_ms(),
            )
            .await?;
        Ok(())
    }

    async fn latest_task_version(
        &self,
        job_id: &str,
        task: &str,
    ) -> Result<(i64, Vec<TaskRecord>), SchedulerError> {
        let rows = self
            .inner
            .store
            .tasks(&TaskFilter {
                job_id: Some(job_id.to_string()),
                task_name: Some(task.to_string()),
                ..Default::default()
            })
            .await?;
        let v = rows.iter().map(|t| t.task_version).max().unwrap_or(0);
        Ok((
            v,
            rows.into_iter().filter(|t| t.task_version == v).collect(),
        ))
    }

    async fn run_job(&self, run: JobRun<'_>) -> Result<(), SchedulerError> {
        let JobRun {
            job_id,
            plan,
            scope,
            cancel,
            stop_requested,
            outcome,
        } = run;
        let store = &self.inner.store;
        for party in &scope.rows {
            store
                .set_job_status_checked(
                    job_id,
                    party.role,
                    party.party_id.as_str(),
                    JobStatus::Running,
                    now_ms(),
                )
                .await?;
        }
        self.schedule_log(
            job_id,
            LogLevel::Info,
            &format!("job {job_id} running with {} tasks", plan.tasks.len()),
        );
        // Other nodes of the job: a failure there (or their silence) ends the job here.
        let watcher = (!scope.remotes.is_empty()).then(|| {
            let (this, job_id, scope) = (self.clone(), job_id.to_string(), scope.clone());
            let (cancel, outcome) = (cancel.clone(), Arc::clone(outcome));
            tokio::spawn(async move {
                let result = this.watch(&job_id, &scope).await;
                if let Err(reason) = &result {
                    let mut slot = outcome.lock();
                    if slot.is_none() {
                        *slot = Some(reason.clone());
                    }
                    drop(slot);
                    cancel.cancel();
                }
                result
            })
        });
        let n_tasks = plan.tasks.len().max(1);
        let mut failure: Option<String> = None;
        // The engines this job's parties here run on, opened once for the whole run.
        let computings = match self.open_engines(job_id, plan).await {
            Ok(c) => c,
            Err(msg) => {
                cancel.cancel();
                failure = Some(msg);
                HashMap::new()
            }
        };
        for (done, task) in plan.tasks.iter().enumerate() {
            if failure.is_some() {
                break;
            }
            let (version, rows) = self.latest_task_version(job_id, &task.name).await?;
            if !rows.is_empty() && rows.iter().all(|t| t.status == TaskStatus::Success) {
                continue; // A rerun keeps tasks that already succeeded.
            }
            if cancel.is_canceled() {
                break;
            }
            if let Err(msg) = self.run_task(run, &computings, task, version).await? {
                failure = Some(msg);
                break;
            }
            let progress = (((done + 1) * 100) / n_tasks) as i32;
            for party in scope.rows.iter().filter(|p| self.hosts_party(p)) {
                let update = fate_store::JobUpdate {
                    progress: Some(progress),
                    ..Default::default()
                };
                store
                    .update_job(job_id, party.role, party.party_id.as_str(), &update)
                    .await?;
            }
        }
        if let Some(watcher) = watcher {
            let local_ok = failure.is_none() && !cancel.is_canceled();
            if scope.initiator && local_ok {
                // Our parties are done: the job ends when every other party's has.
                if let Ok(Err(reason)) = watcher.await {
                    let mut slot = outcome.lock();
                    if slot.is_none() {
                        *slot = Some(reason);
                    }
                }
            } else {
                watcher.abort();
            }
        }
        let stopped = stop_requested.load(Ordering::SeqCst);
        let remote = outcome.lock().clone();
        let (status, error) = if stopped {
            // By a user, or by another party (`stopped by party ...`).
            (
                JobStatus::Canceled,
                Some(remote.unwrap_or_else(|| "stopped by request".to_string())),
            )
        } else {
            // The root cause wins over the cancellation it caused here.
            let failure = match (failure, remote) {
                (Some(local), Some(remote)) if local.contains("canceled") => Some(remote),
                (None, Some(remote)) => Some(remote),
                (local, _) => local,
            };
            match failure {
                Some(msg) => (JobStatus::Failed, Some(msg)),
                None => (JobStatus::Success, None),
            }
        };
        let shutting_down = self.inner.shutting_down.load(Ordering::SeqCst);
        // The initiator stops every other node; a node that shuts down also tells the
        // initiator, which would otherwise wait `partner_timeout` for it.
        if !scope.remotes.is_empty()
            && status != JobStatus::Success
            && (scope.initiator || shutting_down)
        {
            let reason = error.clone().unwrap_or_default();
            self.stop_partners(job_id, &scope.remotes, &reason).await;
        }
        if scope.initiator && !scope.remotes.is_empty() && !shutting_down {
            self.sync_once(job_id, &scope.remotes).await;
        }
        // Tasks that never started end with the job, and say why.
        if status != JobStatus::Success {
            for task in &plan.tasks {
                let (version, rows) = self.latest_task_version(job_id, &task.name).await?;
                for t in rows.iter().filter(|t| t.status == TaskStatus::Waiting) {
                    store
                        .set_task_status_checked(
                            job_id,
                            &task.name,
                            version,
                            t.role,
                            &t.party_id,
                            TaskStatus::Canceled,
                            now_ms(),
                            error.as_deref(),
                        )
                        .await?;
                }
            }
        }
        self.schedule_log(
            job_id,
            LogLevel::Info,
            &format!(
                "job {job_id} {status}{}",
                error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        );
        let current = self.jobs_of(job_id).await?;
        for party in &scope.rows {
            // Another node's row (the initiator's copy) keeps the end status it reported.
            let ended_remote = !self.hosts_party(party)
                && current.iter().any(|j| {
                    j.role == party.role
                        && j.party_id == party.party_id.as_str()
                        && j.status.is_end()
                });
            if ended_remote {
                continue;
            }
            self.finish_job(job_id, party, status, error.clone())
                .await?;
        }
        Ok(())
    }

    /// Runs one task at every party. `Ok(Err(message))` is a task failure (the job fails with
    /// that message); `Err` is a scheduler failure.
    async fn run_task(
        &self,
        run: JobRun<'_>,
        computings: &HashMap<Party, Computing>,
        task: &TaskPlan,
        version: i64,
    ) -> Result<Result<(), String>, SchedulerError> {
        let JobRun {
            job_id,
            plan,
            cancel,
            stop_requested,
            outcome,
            ..
        } = run;
        let store = &self.inner.store;
        let component = match self.inner.registry.get(&task.component) {
            Some(c) => c,
            None => {
                return Ok(Err(format!(
                    "task {}: unknown component {}",
                    task.name, task.component
                )));
            }
        };
        let session_id = federation_session_id(job_id, &task.name, version as u32);
        let mut handles = Vec::new();
        for party in task.parties.iter().filter(|p| self.hosts_party(p)) {
            let inputs = match self.resolve_inputs(job_id, plan, task, party).await {
                Ok(i) => i,
                Err(msg) => {
                    store
                        .set_task_status_checked(
                            job_id,
                            &task.name,
                            version,
                            party.role,
                            party.party_id.as_str(),
                            TaskStatus::Failed,
                            now_ms(),
                            Some(&msg),
                        )
                        .await?;
                    cancel.cancel();
                    return Ok(Err(format!("task {} at {party}: {msg}", task.name)));
                }
            };
            store
                .set_task_status_checked(
                    job_id,
                    &task.name,
                    version,
                    party.role,
                    party.party_id.as_str(),
                    TaskStatus::Running,
                    now_ms(),
                    None,
                )
                .await?;
            let log_path = logs::task_log_path(
                &self.inner.config.logs_dir,
                job_id,
                party.role.as_str(),
                party.party_id.as_str(),
                &task.name,
            );
            let log = TaskLog::new(job_id, party, &task.name, log_path)
                .or_else(|_| TaskLog::new(job_id, party, &task.name, None))
                .map_err(|e| {
                    SchedulerError::Store(StoreError::Invalid {
                        field: "logs_dir",
                        reason: e.to_string(),
                    })
                })?;
            // A job's `conf.task.timeout` bounds how long its tasks wait on other parties.
            let mut fed_config = self.inner.config.federation.clone();
            if let Some(timeout) = plan.task_timeout() {
                fed_config.timeout = timeout;
            }
            // FATE's `rabbitmq_run` / `pulsar_run` for this party, when it federates through
            // that broker: the slice size here, the rest for the transport.
            let transport = &self.inner.transport;
            if let Some(run) = plan
                .engines
                .get(party)
                .and_then(|s| s.broker_run(transport.name()))
            {
                if let Some(n) = run.max_message_size {
                    fed_config.max_message_size = n;
                }
                transport.configure_session(&session_id, party, run);
            }
            // What this party sends and receives, for the board's transcript view.
            let traffic = Arc::new(crate::traffic::Traffic::default());
            let federation = Federation::new(
                self.inner.transport.clone(),
                session_id.clone(),
                party.clone(),
                fed_config,
                cancel.clone(),
            )
            .with_observer(traffic.clone());
            let ctx = Ctx {
                job_id: job_id.to_string(),
                task_name: task.name.clone(),
                task_version: version as u32,
                // FATE gives stage-agnostic tasks (reader, psi, evaluation) the stage `default`;
                // they run in the job's stage.
                stage: if task.stage == "default" {
                    plan.stage.clone()
                } else {
                    task.stage.clone()
                },
                local: party.clone(),
                parties: task.parties.clone(),
                computing: computings
                    .get(party)
                    .cloned()
                    .unwrap_or_else(|| self.inner.computing.clone()),
                federation,
                params: task.parameters.get(party).cloned().unwrap_or_default(),
                inputs,
                outputs: Default::default(),
                log,
                cancel: cancel.clone(),
                catalog: Arc::new(StoreCatalog {
                    store: store.clone(),
                    tables: self.inner.computing.store().clone(),
                    handle: tokio::runtime::Handle::current(),
                }),
                files: self.inner.config.data_roots.clone(),
            };
            let component = component.clone();
            let cancel = cancel.clone();
            let span = tracing::info_span!("task", job_id, party = %party, task = %task.name);
            handles.push((
                party.clone(),
                traffic,
                tokio::task::spawn_blocking(move || {
                    let _guard = span.enter();
                    ctx.info(format!("task {} started as {}", ctx.task_name, ctx.local));
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        component.run(&ctx)
                    }));
                    let result = match result {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(p) => Err(format!(
                            "component panicked (a bug in fate-rs): {}",
                            p.downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default()
                        )),
                    };
                    match &result {
                        Ok(()) => ctx.info("task finished"),
                        Err(e) => {
                            ctx.log.log(LogLevel::Error, &format!("task failed: {e}"));
                            // Wake every other party of this job so they stop waiting on us.
                            cancel.cancel();
                        }
                    }
                    (result, ctx.outputs.take())
                }),
            ));
        }
        let mut first_failure: Option<String> = None;
        for (party, traffic, handle) in handles {
            let (result, outputs) = match handle.await {
                Ok(r) => r,
                Err(e) => (
                    Err(format!("task thread ended abnormally: {e}")),
                    Default::default(),
                ),
            };
            if let Some(path) = crate::traffic::transcript_path(
                &self.inner.config.logs_dir,
                job_id,
                party.role.as_str(),
                party.party_id.as_str(),
                &task.name,
            ) {
                let _ = tokio::task::spawn_blocking(move || traffic.write(&path)).await;
            }
            let (status, error) = match result {
                Ok(()) => {
                    let written: Vec<(String, String)> = outputs
                        .data
                        .iter()
                        .filter(|d| !d.existing)
                        .map(|d| (d.namespace.clone(), d.name.clone()))
                        .collect();
                    if let Err(e) = self
                        .persist_outputs(job_id, plan, task, &party, outputs)
                        .await
                    {
                        // The metadata row is a table's commit point: data whose row could not
                        // be written goes, so no orphan blocks the name.
                        self.remove_uncommitted(&written).await;
                        return Err(e);
                    }
                    (TaskStatus::Success, None)
                }
                // A stop (by a user, a partner or the node's shutdown) ends the task as
                // canceled with the stop's reason, not as failed.
                Err(_) if stop_requested.load(Ordering::SeqCst) && cancel.is_canceled() => (
                    TaskStatus::Canceled,
                    Some(
                        outcome
                            .lock()
                            .clone()
                            .unwrap_or_else(|| "stopped by request".to_string()),
                    ),
                ),
                Err(e) if e == "canceled" => (TaskStatus::Canceled, Some("canceled".to_string())),
                Err(e) => {
                    if first_failure.is_none() {
                        first_failure = Some(format!("task {} failed at {party}: {e}", task.name));
                    }
                    (TaskStatus::Failed, Some(e))
                }
            };
            store
                .set_task_status_checked(
                    job_id,
                    &task.name,
                    version,
                    party.role,
                    party.party_id.as_str(),
                    status,
                    now_ms(),
                    error.as_deref(),
                )
                .await?;
        }
        if let Some(msg) = first_failure {
            return Ok(Err(msg));
        }
        if cancel.is_canceled() {
            return Ok(Err(format!("task {} canceled", task.name)));
        }
        Ok(Ok(()))
    }

    async fn resolve_inputs(
        &self,
        job_id: &str,
        plan: &JobPlan,
        task: &TaskPlan,
        party: &Party,
    ) -> Result<BTreeMap<String, Vec<InputArtifact>>, String> {
        let store = &self.inner.store;
        let spec = self.inner.registry.get(&task.component).map(|c| c.spec());
        let mut out: BTreeMap<String, Vec<InputArtifact>> = BTreeMap::new();
        for input in task.inputs_for(party) {
            let optional = spec
                .as_ref()
                .and_then(|s| s.input(&input.key))
                .is_some_and(|a| a.optional);
            let role = party.role;
            let pid = party.party_id.as_str();
            let artifact = match &input.source {
                InputSource::Task {
                    producer_task,
                    output_key,
                    ..
                } => match input.kind {
                    fate_types::component::ArtifactKind::Data => {
                        let recs = store
                            .output_data(job_id, role, pid, Some(producer_task))
                            .await
                            .map_err(|e| e.to_string())?;
                        match recs.into_iter().find(|r| &r.output_key == output_key) {
                            Some(r) => {
                                let schema = store
                                    .table(&r.namespace, &r.name)
                                    .await
                                    .map_err(|e| e.to_string())?
                                    .and_then(|t| serde_json::from_value::<Schema>(t.schema).ok())
                                    .unwrap_or_default();
                                Some(InputArtifact::Data {
                                    namespace: r.namespace,
                                    name: r.name,
                                    schema,
                                    source_task: Some(producer_task.clone()),
                                })
                            }
                            None => None,
                        }
                    }
                    _ => {
                        let recs = store
                            .models(job_id, role, pid, Some(producer_task))
                            .await
                            .map_err(|e| e.to_string())?;
                        recs.into_iter()
                            .find(|r| &r.output_key == output_key)
                            .map(|r| InputArtifact::Model(r.data))
                    }
                },
                InputSource::ModelWarehouse {
                    model_id,
                    model_version,
                    producer_task,
                    output_key,
                    ..
                } => {
                    let model_id = model_id.clone().or_else(|| {
                        plan.conf
                            .model_warehouse
                            .as_ref()
                            .and_then(|w| w.get("model_id"))
                            .and_then(|v| v.as_str())
                            .map(String::from)
                    });
                    let model_version = model_version.clone().or_else(|| {
                        plan.conf
                            .model_warehouse
                            .as_ref()
                            .and_then(|w| w.get("model_version"))
                            .map(|v| match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                    });
                    match (model_id, model_version) {
                        (Some(mid), Some(mv)) => {
                            let recs = store
                                .models_by_model_id(&mid, &mv, role, pid)
                                .await
                                .map_err(|e| e.to_string())?;
                            recs.into_iter()
                                .find(|r| {
                                    &r.task_name == producer_task && &r.output_key == output_key
                                })
                                .map(|r| InputArtifact::Model(r.data))
                        }
                        _ => {
                            return Err(format!(
                                "input `{}`: model_warehouse needs model_id and model_version",
                                input.key
                            ));
                        }
                    }
                }
                InputSource::DataWarehouse { spec, .. } => {
                    match (
                        spec.get("namespace").and_then(|v| v.as_str()),
                        spec.get("name").and_then(|v| v.as_str()),
                    ) {
                        (Some(ns), Some(name)) => {
                            let t = store.table(ns, name).await.map_err(|e| e.to_string())?;
                            let t = t.ok_or_else(|| {
                                format!("input `{}`: table {ns}.{name} not found", input.key)
                            })?;
                            Some(InputArtifact::Data {
                                namespace: ns.to_string(),
                                name: name.to_string(),
                                schema: serde_json::from_value(t.schema).unwrap_or_default(),
                                source_task: None,
                            })
                        }
                        _ => {
                            return Err(format!(
                                "input `{}`: data_warehouse needs namespace and name",
                                input.key
                            ));
                        }
                    }
                }
            };
            match artifact {
                Some(a) => out.entry(input.key.clone()).or_default().push(a),
                None if optional => {}
                None => {
                    return Err(format!(
                        "input `{}`: no artifact found for {party}",
                        input.key
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn persist_outputs(
        &self,
        job_id: &str,
        plan: &JobPlan,
        task: &TaskPlan,
        party: &Party,
        outputs: fate_runtime::RecordedOutputs,
    ) -> Result<(), SchedulerError> {
        let store = &self.inner.store;
        let now = now_ms();
        let pid = party.party_id.to_string();
        let model_id = plan
            .conf
            .model_id
            .clone()
            .unwrap_or_else(|| job_id.to_string());
        let model_version = plan
            .conf
            .model_version
            .clone()
            .unwrap_or_else(|| "0".into());
        let tables = self.inner.computing.store();
        for d in outputs.data {
            let rec = TableRecord {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                partitions: d.partitions as i32,
                count: d.count as i64,
                schema: serde_json::to_value(&d.schema).unwrap_or_default(),
                engine: tables.engine().into(),
                path: format!("{}/{}", d.namespace, d.name),
                address: tables.address(&d.namespace, &d.name),
                source: serde_json::json!({"job_id": job_id, "task_name": task.name, "role": party.role, "party_id": pid}),
                create_time: now,
            };
            // A table the task only read (reader) keeps its own metadata.
            if !d.existing {
                store.put_table(&rec, true).await?;
            }
            if !d.user_table {
                store
                    .save_output_data(&OutputDataRecord {
                        job_id: job_id.to_string(),
                        role: party.role,
                        party_id: pid.clone(),
                        task_name: task.name.clone(),
                        output_key: d.key,
                        namespace: d.namespace,
                        name: d.name,
                        create_time: now,
                    })
                    .await?;
            }
        }
        for (key, data) in outputs.models {
            store
                .save_model(&ModelRecord {
                    job_id: job_id.to_string(),
                    role: party.role,
                    party_id: pid.clone(),
                    task_name: task.name.clone(),
                    output_key: key,
                    model_id: model_id.clone(),
                    model_version: model_version.clone(),
                    component: task.component.clone(),
                    data,
                    create_time: now,
                })
                .await?;
        }
        for (name, metric_type, data) in outputs.metrics {
            store
                .save_metric(&MetricRecord {
                    job_id: job_id.to_string(),
                    role: party.role,
                    party_id: pid.clone(),
                    task_name: task.name.clone(),
                    name,
                    metric_type,
                    groups: serde_json::json!([]),
                    step_axis: None,
                    data,
                    create_time: now,
                })
                .await?;
        }
        Ok(())
    }

    /// Waits until every party's record of the job has an end status, or `timeout`.
    pub async fn wait(&self, job_id: &str, timeout: Duration) -> Result<JobStatus, SchedulerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let jobs = self.jobs_of(job_id).await?;
            if jobs.iter().all(|j| j.status.is_end())
                && !self.inner.running.lock().contains_key(job_id)
            {
                let statuses: Vec<JobStatus> = jobs.iter().map(|j| j.status).collect();
                return Ok(*statuses
                    .iter()
                    .find(|s| **s != JobStatus::Success)
                    .unwrap_or(&JobStatus::Success));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(jobs.first().map(|j| j.status).unwrap_or(JobStatus::Running));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn jobs_of(&self, job_id: &str) -> Result<Vec<JobRecord>, SchedulerError> {
        let jobs = self
            .inner
            .store
            .jobs(&JobFilter {
                job_id: Some(job_id.to_string()),
                ..Default::default()
            })
            .await?;
        if jobs.is_empty() {
            return Err(SchedulerError::JobNotFound(job_id.to_string()));
        }
        Ok(jobs)
    }

    /// Stops a running or waiting job at every party; its running tasks end as canceled.
    pub async fn stop(&self, job_id: &str) -> Result<(), SchedulerError> {
        let jobs = self.jobs_of(job_id).await?;
        if let Some(j) = jobs.iter().find(|j| j.status.is_end()) {
            return Err(SchedulerError::BadState {
                job_id: job_id.into(),
                status: j.status,
                action: "stop",
            });
        }
        let was_running = if let Some(r) = self.inner.running.lock().get(job_id) {
            r.stop_requested.store(true, Ordering::SeqCst);
            r.cancel.cancel();
            true
        } else {
            false
        };
        self.schedule_log(job_id, LogLevel::Info, "stop requested");
        // FATE-Flow's stop answers once the job is canceled; a script that reruns right after
        // `/v2/job/stop` (fate_client's `flow job stop` then `flow job rerun`) must find it
        // ended. The runner cancels its tasks and lets go of the job once their threads
        // return (a partition computation in progress finishes first); the wait is bounded
        // by STOP_WAIT, after which the stop still answers (the job ends when the task does).
        if was_running {
            let deadline = tokio::time::Instant::now() + STOP_WAIT;
            while self.inner.running.lock().contains_key(job_id)
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Reruns a job that ended without success: tasks that succeeded are kept, the others run
    /// again with their task version increased (fate-spec §3.1).
    pub async fn rerun(&self, job_id: &str) -> Result<(), SchedulerError> {
        self.rerun_tasks(job_id, None).await
    }

    /// Reruns `only` the named tasks (a partner rerun, decided by the initiator), or every
    /// task that did not succeed. The initiator first has every other node rerun the same
    /// tasks, so task versions (and federation sessions) stay equal everywhere.
    pub(crate) async fn rerun_tasks(
        &self,
        job_id: &str,
        only: Option<&[String]>,
    ) -> Result<(), SchedulerError> {
        self.check_accepting()?;
        let jobs = self.jobs_of(job_id).await?;
        // A stopped job's rows end a moment before its runner lets go of it: a rerun right
        // after a stop (as `fate job stop` then `fate job rerun` do) waits for that moment
        // instead of being refused as running.
        if jobs.iter().all(|j| j.status.is_end()) {
            let deadline = tokio::time::Instant::now() + RUNNER_EXIT_WAIT;
            while self.inner.running.lock().contains_key(job_id)
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if self.inner.running.lock().contains_key(job_id) || jobs.iter().any(|j| !j.status.is_end())
        {
            let status = jobs
                .iter()
                .map(|j| j.status)
                .find(|s| !s.is_end())
                .unwrap_or(JobStatus::Running);
            return Err(SchedulerError::BadState {
                job_id: job_id.into(),
                status,
                action: "rerun",
            });
        }
        if only.is_none() && jobs.iter().all(|j| j.status == JobStatus::Success) {
            return Err(SchedulerError::BadState {
                job_id: job_id.into(),
                status: JobStatus::Success,
                action: "rerun",
            });
        }
        let dag: fate_dag::DagSchema =
            serde_json::from_value(jobs[0].dag.clone()).map_err(|e| StoreError::Invalid {
                field: "dag",
                reason: e.to_string(),
            })?;
        let plan = self.plan(&dag)?;
        let scope = self.scope(&plan);
        if only.is_none() && !scope.initiator {
            return Err(SchedulerError::Partner(format!(
                "job {job_id} was initiated by party {}: rerun it at that party's node",
                plan.initiator
            )));
        }
        let names: Vec<String> = match only {
            Some(list) => list.to_vec(),
            None => {
                let mut names = Vec::new();
                for task in &plan.tasks {
                    let (_, rows) = self.latest_task_version(job_id, &task.name).await?;
                    if rows.is_empty() || rows.iter().any(|t| t.status != TaskStatus::Success) {
                        names.push(task.name.clone());
                    }
                }
                names
            }
        };
        // Waiting here first: a partner that starts its rerun and polls this node must not
        // see the previous run's end status.
        let now = now_ms();
        for j in &jobs {
            self.inner
                .store
                .set_job_status_checked(job_id, j.role, &j.party_id, JobStatus::Waiting, now)
                .await?;
            let update = fate_store::JobUpdate {
                error: Some(String::new()),
                ..Default::default()
            };
            self.inner
                .store
                .update_job(job_id, j.role, &j.party_id, &update)
                .await?;
        }
        if scope.initiator && !scope.remotes.is_empty() {
            let body = serde_json::json!({"job_id": job_id, "tasks": names});
            for party in &scope.remotes {
                if let Err(e) = self
                    .partner_call(
                        job_id,
                        party,
                        crate::site::paths::JOB_RERUN,
                        body.clone(),
                        None,
                    )
                    .await
                {
                    let reason = format!("party {party} could not rerun: {e}");
                    for j in &jobs {
                        let party = Party::new(j.role, j.party_id.as_str());
                        self.finish_job(job_id, &party, JobStatus::Failed, Some(reason.clone()))
                            .await?;
                    }
                    return Err(SchedulerError::Partner(reason));
                }
            }
        }
        for task in plan.tasks.iter().filter(|t| names.contains(&t.name)) {
            let (version, _) = self.latest_task_version(job_id, &task.name).await?;
            self.insert_task_rows(job_id, task, &scope.rows, version + 1, now)
                .await?;
        }
        self.schedule_log(job_id, LogLevel::Info, "rerun requested");
        self.spawn_run(job_id.to_string(), plan, scope);
        Ok(())
    }

    /// A task's protocol transcript at one of this node's parties (what it sent and
    /// received: names, tag patterns, peers, counts, bytes); `None` when it has none.
    pub async fn transcript(
        &self,
        job_id: &str,
        role: &str,
        party_id: &str,
        task: &str,
    ) -> Result<Option<Vec<crate::TrafficEntry>>, SchedulerError> {
        self.jobs_of(job_id).await?;
        let invalid = |reason: String| StoreError::Invalid {
            field: "transcript",
            reason,
        };
        let Some(path) = crate::traffic::transcript_path(
            &self.inner.config.logs_dir,
            job_id,
            role,
            party_id,
            task,
        ) else {
            return Ok(None);
        };
        let read = tokio::task::spawn_blocking(move || crate::traffic::read(&path))
            .await
            .map_err(|e| invalid(e.to_string()))?
            .map_err(|e| invalid(e.to_string()))?;
        Ok(read)
    }

    /// Log lines of a job.
    pub async fn logs(
        &self,
        job_id: &str,
        role: Option<&str>,
        party_id: Option<&str>,
        task: Option<&str>,
    ) -> Result<Vec<LogLine>, SchedulerError> {
        self.jobs_of(job_id).await?;
        let dir = self.inner.config.logs_dir.clone();
        let (job_id, role, party_id, task) = (
            job_id.to_string(),
            role.map(String::from),
            party_id.map(String::from),
            task.map(String::from),
        );
        let lines = tokio::task::spawn_blocking(move || {
            logs::read_logs(
                &dir,
                &job_id,
                role.as_deref(),
                party_id.as_deref(),
                task.as_deref(),
            )
        })
        .await
        .map_err(|e| StoreError::Invalid {
            field: "logs",
            reason: e.to_string(),
        })?
        .map_err(|e| StoreError::Invalid {
            field: "logs",
            reason: e.to_string(),
        })?;
        Ok(lines)
    }

    /// Party of a job record (helper for callers that hold records).
    pub fn party(role: Role, party_id: &str) -> Party {
        party_of(role, party_id)
    }
}

/// One run of a job (the arguments of `run_job`).
#[derive(Clone, Copy)]
struct JobRun<'a> {
    job_id: &'a str,
    plan: &'a JobPlan,
    scope: &'a Scope,
    cancel: &'a CancelToken,
    stop_requested: &'a AtomicBool,
    outcome: &'a Arc<Mutex<Option<String>>>,
}

/// The reader's view of stored tables, over the metadata store.
struct StoreCatalog {
    store: MetaStore,
    /// Where this node keeps tables now: a table recorded at another address (the node was
    /// restarted on another storage URI) is an error naming both, not a missing table.
    tables: Arc<dyn fate_computing::TableStore>,
    handle: tokio::runtime::Handle,
}

impl Catalog for StoreCatalog {
    fn table(&self, namespace: &str, name: &str) -> Result<Option<TableInfo>, String> {
        // Components run on blocking threads, outside the async context, so blocking on the
        // runtime here is allowed.
        let rec = self
            .handle
            .block_on(self.store.table(namespace, name))
            .map_err(|e| e.to_string())?;
        if let Some(t) = &rec {
            // FATE reads a table from its meta's `engine`/`address`; this node reads through
            // its one table store, so the two must agree (records from before addresses were
            // kept have none).
            let here = self.tables.address(namespace, name);
            if !t.address.is_empty() && t.address != here {
                return Err(format!(
                    "table {namespace}.{name} lives at {} (storage engine {}), but this node \
                     keeps tables at {here} (storage engine {}): start the node on the \
                     storage the table was written to (--storage / node.yaml `storage:`), \
                     or upload it again",
                    t.address,
                    t.engine,
                    self.tables.engine()
                ));
            }
        }
        Ok(rec.map(|t| TableInfo {
            schema: serde_json::from_value(t.schema).unwrap_or_default(),
            count: t.count as usize,
            partitions: t.partitions as usize,
        }))
    }
}

/// Each task's parameters, per party, through its component's own check
/// (`Component::check_params`), so a value the component would refuse at run time is refused
/// when the job is planned: at submit, when a partner's job is accepted, before a queued job
/// runs again. The error names the task, the party and the dotted field.
fn check_task_params(registry: &Registry, plan: &JobPlan) -> Result<(), PlanError> {
    for task in &plan.tasks {
        let Some(component) = registry.get(&task.component) else {
            continue;
        };
        for (party, params) in &task.parameters {
            if let Err(e) = component.check_params(&task.stage, party.role, params) {
                let (field, reason) = match e {
                    ComponentError::Param { name, reason } => {
                        (format!("dag.tasks.{}.parameters.{name}", task.name), reason)
                    }
                    other => (
                        format!("dag.tasks.{}.parameters", task.name),
                        other.to_string(),
                    ),
                };
                return Err(PlanError::task(
                    fate_dag::PlanErrorKind::BadValue,
                    &task.name,
                    field,
                    format!("{reason} (party {party})"),
                ));
            }
        }
    }
    Ok(())
}
