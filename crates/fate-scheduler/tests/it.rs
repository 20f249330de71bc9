//! fate-scheduler's integration tests: what a start does to the state a killed node left
//! (jobs, tasks, half-written tables), graceful shutdown, and cross-party scheduling between
//! nodes in one process, reached through a fake `Partners` and a fault-injecting transport.

use fate_computing::{Computing, ComputingConfig};
use fate_federation::faulty::{Fault, FaultyTransport};
use fate_federation::{FederationConfig, LocalTransport, Transport};
use fate_runtime::{Component, ComponentError, Ctx, Registry};
use fate_scheduler::site::paths;
use fate_scheduler::{
    PartnerError, Partners, RESTART_REASON, SHUTDOWN_REASON, Scheduler, SchedulerConfig,
    SchedulerError, Site,
};
use fate_store::{JobFilter, JobRecord, MetaStore, TableRecord, TaskFilter, TaskRecord};
use fate_types::component::ComponentSpec;
use fate_types::{JobStatus, Role, TaskStatus};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GUEST: &str = "9999";
const HOST: &str = "10000";

/// A component that takes `seconds` and ignores cancellation (a long, uninterruptible step).
struct Stubborn;

impl Component for Stubborn {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "stubborn".into(),
            legacy_modules: vec![],
            description: "sleeps, ignoring cancellation".into(),
            roles: vec![Role::Guest],
            params: vec![],
            inputs: vec![],
            outputs: vec![],
        }
    }

    fn run(&self, _ctx: &Ctx) -> Result<(), ComponentError> {
        std::thread::sleep(Duration::from_millis(1500));
        Ok(())
    }
}

/// A component whose guest sends the host a 64 KiB object (larger than a small slice).
struct BigObject;

impl Component for BigObject {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "big_object".into(),
            legacy_modules: vec![],
            description: "the guest sends the host 64 KiB".into(),
            roles: vec![Role::Guest, Role::Host],
            params: vec![],
            inputs: vec![],
            outputs: vec![],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let host = ctx
            .parties
            .iter()
            .find(|p| p.role == Role::Host)
            .unwrap()
            .clone();
        let guest = ctx
            .parties
            .iter()
            .find(|p| p.role == Role::Guest)
            .unwrap()
            .clone();
        let big = vec![7u8; 64 << 10];
        if ctx.local.role == Role::Guest {
            ctx.federation.remote("big", "t", &[host], &big)?;
        } else {
            let got: Vec<u8> = ctx.federation.get_one("big", "t", &guest)?;
            assert_eq!(got, big);
        }
        Ok(())
    }
}

fn registry() -> Registry {
    let mut r = fate_components::registry();
    r.register(Arc::new(Stubborn));
    r.register(Arc::new(BigObject));
    r
}

fn computing(dir: Option<&Path>) -> Computing {
    Computing::new(ComputingConfig {
        cores: 2,
        default_partitions: 2,
        data_dir: dir.map(|d| d.join("tables")),
    })
    .unwrap()
}

async fn store(dir: &Path) -> MetaStore {
    MetaStore::open_sqlite(&dir.join("fate_flow.sqlite"))
        .await
        .unwrap()
}

async fn start(
    dir: &Path,
    transport: Arc<dyn Transport>,
    site: Option<Site>,
    federation_timeout: Duration,
) -> Scheduler {
    Scheduler::new(
        store(dir).await,
        computing(Some(dir)),
        transport,
        registry(),
        SchedulerConfig {
            logs_dir: dir.join("logs"),
            federation: FederationConfig {
                timeout: federation_timeout,
                ..FederationConfig::default()
            },
            site,
            data_roots: fate_runtime::DataRoots::new([dir.to_path_buf()], 1 << 20).unwrap(),
            engines: None,
        },
    )
    .await
    .unwrap()
}

async fn standalone(dir: &Path) -> Scheduler {
    start(dir, LocalTransport::new(), None, Duration::from_secs(30)).await
}

fn dag(v: Value) -> fate_dag::DagSchema {
    serde_json::from_value(v).unwrap()
}

fn toy_dag() -> fate_dag::DagSchema {
    dag(json!({"dag": {
        "parties": [{"role": "guest", "party_id": [GUEST]}, {"role": "host", "party_id": [HOST]}],
        "tasks": {"toy_example_0": {"component_ref": "toy_example",
                                    "parameters": {"data_num": 100, "partition": 2}}}
    }, "schema_version": "2.2.0"}))
}

fn stubborn_dag() -> fate_dag::DagSchema {
    dag(json!({"dag": {
        "parties": [{"role": "guest", "party_id": [GUEST]}],
        "tasks": {"stubborn_0": {"component_ref": "stubborn", "parameters": {}}}
    }, "schema_version": "2.2.0"}))
}

fn upload_dag(file: &Path, namespace: &str, name: &str) -> fate_dag::DagSchema {
    dag(json!({"dag": {
        "parties": [{"role": "local", "party_id": ["0"]}],
        "tasks": {"upload_0": {"component_ref": "upload", "parameters": {
            "file": file.to_str().unwrap(), "namespace": namespace, "name": name,
            "partitions": 2, "meta": {"match_id_name": "id", "label_name": "y"}}}}
    }, "schema_version": "2.2.0"}))
}

async fn jobs(s: &Scheduler, job_id: &str) -> Vec<JobRecord> {
    s.store()
        .jobs(&JobFilter {
            job_id: Some(job_id.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn tasks(s: &Scheduler, job_id: &str) -> Vec<TaskRecord> {
    s.store()
        .tasks(&TaskFilter {
            job_id: Some(job_id.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn job_error(s: &Scheduler, job_id: &str) -> String {
    jobs(s, job_id)
        .await
        .into_iter()
        .find_map(|j| j.error)
        .unwrap_or_default()
}

/// Writes what `record_job` would have: one job row per party and one task row per party of
/// each `(task, role, party_id, status)`.
async fn seed_job(
    store: &MetaStore,
    job_id: &str,
    status: JobStatus,
    dag: &fate_dag::DagSchema,
    tasks: &[(&str, Role, &str, TaskStatus)],
) {
    let now = fate_store::now_ms();
    for (role, party_id) in [(Role::Guest, GUEST), (Role::Host, HOST)] {
        store
            .insert_job(&JobRecord {
                job_id: job_id.into(),
                role,
                party_id: party_id.into(),
                status,
                progress: 0,
                dag: serde_json::to_value(dag).unwrap(),
                model_id: job_id.into(),
                model_version: "0".into(),
                initiator_party_id: GUEST.into(),
                scheduler_party_id: GUEST.into(),
                parties: serde_json::to_value(&dag.dag.parties).unwrap(),
                description: String::new(),
                user_name: String::new(),
                create_time: now,
                start_time: (status == JobStatus::Running).then_some(now),
                end_time: None,
                elapsed: None,
                error: None,
                cores: 2,
            })
            .await
            .unwrap();
    }
    for (name, role, party_id, status) in tasks {
        store
            .insert_task(&TaskRecord {
                job_id: job_id.into(),
                task_id: format!("{job_id}_{name}"),
                task_name: name.to_string(),
                task_version: 0,
                component: "toy_example".into(),
                role: *role,
                party_id: party_id.to_string(),
                status: *status,
                parameters: json!({"data_num": 100, "partition": 2}),
                create_time: now,
                start_time: (*status == TaskStatus::Running).then_some(now),
                end_time: None,
                elapsed: None,
                error: None,
            })
            .await
            .unwrap();
    }
}

fn table_row(namespace: &str, name: &str) -> TableRecord {
    TableRecord {
        namespace: namespace.into(),
        name: name.into(),
        partitions: 2,
        count: 3,
        schema: json!({}),
        engine: "standalone".into(),
        path: format!("{namespace}/{name}"),
        address: format!("{namespace}/{name}"),
        source: json!({}),
        create_time: fate_store::now_ms(),
    }
}

/// Saves table data without its metadata row: what an upload killed before its row leaves.
fn save_data(c: &Computing, namespace: &str, name: &str) {
    c.parallelize((0..3u64).map(|i| (i, i)), 2)
        .save(namespace, name, false)
        .unwrap();
}

fn write_csv(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("small.csv");
    std::fs::write(&file, "id,y,x0\n1,0,0.5\n2,1,0.25\n3,0,0.125\n").unwrap();
    file
}

// --- Recovery at start ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_fails_started_jobs_with_their_tasks_and_runs_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (started, queued) = ("202612020000000000001", "202612020000000000002");
    {
        let store = store(dir.path()).await;
        seed_job(
            &store,
            started,
            JobStatus::Running,
            &toy_dag(),
            &[
                ("toy_example_0", Role::Guest, GUEST, TaskStatus::Running),
                ("toy_example_0", Role::Host, HOST, TaskStatus::Waiting),
            ],
        )
        .await;
        seed_job(
            &store,
            queued,
            JobStatus::Waiting,
            &toy_dag(),
            &[
                ("toy_example_0", Role::Guest, GUEST, TaskStatus::Waiting),
                ("toy_example_0", Role::Host, HOST, TaskStatus::Waiting),
            ],
        )
        .await;
    }
    let s = standalone(dir.path()).await;
    let recovery = s.recovery();
    assert_eq!(recovery.failed_jobs, vec![started.to_string()]);
    assert_eq!(recovery.resumed_jobs, vec![queued.to_string()]);
    for j in jobs(&s, started).await {
        assert_eq!(j.status, JobStatus::Failed, "{j:?}");
        assert_eq!(j.error.as_deref(), Some(RESTART_REASON));
    }
    for t in tasks(&s, started).await {
        let expected = match t.role {
            Role::Guest => TaskStatus::Failed,
            _ => TaskStatus::Canceled,
        };
        assert_eq!(t.status, expected, "{t:?}");
        assert_eq!(t.error.as_deref(), Some(RESTART_REASON), "{t:?}");
        assert!(t.end_time.is_some(), "{t:?}");
    }
    assert_eq!(
        s.wait(queued, Duration::from_secs(60)).await.unwrap(),
        JobStatus::Success,
        "{}",
        job_error(&s, queued).await
    );
    let t = tasks(&s, queued).await;
    assert_eq!(t.len(), 2, "no new task versions: {t:?}");
    assert!(t.iter().all(|t| t.status == TaskStatus::Success), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_fails_a_queued_job_whose_tasks_had_ended() {
    let dir = tempfile::tempdir().unwrap();
    let job_id = "202612020000000000003";
    // A rerun that set the job waiting but was killed before recording new task versions.
    seed_job(
        &store(dir.path()).await,
        job_id,
        JobStatus::Waiting,
        &toy_dag(),
        &[
            ("toy_example_0", Role::Guest, GUEST, TaskStatus::Waiting),
            ("toy_example_0", Role::Host, HOST, TaskStatus::Waiting),
        ],
    )
    .await;
    {
        let store = store(dir.path()).await;
        for (role, pid) in [(Role::Guest, GUEST), (Role::Host, HOST)] {
            for to in [TaskStatus::Running, TaskStatus::Failed] {
                store
                    .set_task_status_checked(job_id, "toy_example_0", 0, role, pid, to, 1, None)
                    .await
                    .unwrap();
            }
        }
    }
    let s = standalone(dir.path()).await;
    assert_eq!(s.recovery().failed_jobs, vec![job_id.to_string()]);
    assert!(
        jobs(&s, job_id)
            .await
            .iter()
            .all(|j| j.status == JobStatus::Failed)
    );
}

// --- Tables: the metadata row is the commit point ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_removes_table_halves_and_keeps_whole_tables() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = computing(Some(dir.path()));
        let store = store(dir.path()).await;
        save_data(&c, "up", "orphan");
        store
            .put_table(&table_row("up", "ghost"), false)
            .await
            .unwrap();
        save_data(&c, "up", "whole");
        store
            .put_table(&table_row("up", "whole"), false)
            .await
            .unwrap();
    }
    let s = standalone(dir.path()).await;
    let recovery = s.recovery();
    assert_eq!(recovery.removed_data, vec!["up.orphan".to_string()]);
    assert_eq!(recovery.removed_rows, vec!["up.ghost".to_string()]);
    assert!(!s.computing().exists("up", "orphan").unwrap());
    assert!(s.store().table("up", "ghost").await.unwrap().is_none());
    assert!(s.computing().exists("up", "whole").unwrap());
    assert!(s.store().table("up", "whole").await.unwrap().is_some());
    // With nothing half-written, a second start removes nothing.
    drop(s);
    let s = standalone(dir.path()).await;
    assert_eq!(s.recovery(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_replaces_data_left_without_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    // An upload killed between its data and its metadata row (no restart since).
    save_data(s.computing(), "up", "t");
    let file = write_csv(dir.path());
    let job = s.submit(upload_dag(&file, "up", "t"), "").await.unwrap();
    assert_eq!(
        s.wait(&job.job_id, Duration::from_secs(60)).await.unwrap(),
        JobStatus::Success,
        "{}",
        job_error(&s, &job.job_id).await
    );
    let row = s.store().table("up", "t").await.unwrap().unwrap();
    assert_eq!(row.count, 3);
    // Once listed, the table blocks an upload without overwrite again.
    let job = s.submit(upload_dag(&file, "up", "t"), "").await.unwrap();
    assert_eq!(
        s.wait(&job.job_id, Duration::from_secs(60)).await.unwrap(),
        JobStatus::Failed
    );
    assert!(job_error(&s, &job.job_id).await.contains("exists already"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_table_removes_whichever_half_exists() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    save_data(s.computing(), "up", "data_only");
    s.store()
        .put_table(&table_row("up", "row_only"), false)
        .await
        .unwrap();
    save_data(s.computing(), "up", "both");
    s.store()
        .put_table(&table_row("up", "both"), false)
        .await
        .unwrap();
    for name in ["data_only", "row_only", "both"] {
        assert!(s.delete_table("up", name).await.unwrap(), "{name}");
        assert!(!s.computing().exists("up", name).unwrap(), "{name}");
        assert!(
            s.store().table("up", name).await.unwrap().is_none(),
            "{name}"
        );
        assert!(!s.delete_table("up", name).await.unwrap(), "{name} twice");
    }
}

// --- A federation of nodes in one process --------------------------------------------------

/// How a party's node answers partner calls.
#[derive(Clone, Debug)]
enum Answer {
    /// Its scheduler answers (or, for a party without one, a stub that accepts every call and
    /// reports the job running).
    Normal,
    /// `create` fails with this message.
    FailCreate(String),
    /// `create` succeeds; afterwards nothing answers.
    SilentAfterCreate,
    /// Nothing answers until then (a partition of the control plane).
    UnreachableUntil(Instant),
}

/// The nodes of a test federation: a call reaches a node's scheduler directly, as fate-api's
/// `/v2/partner/*` handlers would.
struct Net {
    handle: tokio::runtime::Handle,
    nodes: Mutex<HashMap<String, Scheduler>>,
    answers: Mutex<HashMap<String, Answer>>,
    /// `(to party, path)` of every call.
    calls: Mutex<Vec<(String, String)>>,
}

impl Net {
    fn new() -> Arc<Net> {
        Arc::new(Net {
            handle: tokio::runtime::Handle::current(),
            nodes: Mutex::new(HashMap::new()),
            answers: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn answer(&self, party_id: &str, a: Answer) {
        self.answers.lock().insert(party_id.into(), a);
    }

    fn calls_to(&self, party_id: &str, path: &str) -> usize {
        self.calls
            .lock()
            .iter()
            .filter(|(p, c)| p == party_id && c == path)
            .count()
    }

    /// A site for `party_id` whose calls go through this net, with test timings.
    fn site(self: &Arc<Self>, party_id: &str, partner_timeout: Duration) -> Site {
        let mut site = Site::new(
            [party_id.to_string()],
            Arc::new(NodePartners {
                from: party_id.into(),
                net: self.clone(),
            }),
        );
        site.poll_interval = Duration::from_millis(100);
        site.call_timeout = Duration::from_millis(500);
        site.partner_timeout = partner_timeout;
        site
    }
}

/// The `Partners` of one node of a [`Net`].
struct NodePartners {
    from: String,
    net: Arc<Net>,
}

impl Partners for NodePartners {
    fn call(
        &self,
        job_id: &str,
        party_id: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        self.call_coded(job_id, party_id, path, body, timeout)
            .map_err(|e| e.message)
    }

    /// As fate-api's partner endpoints answer: a job the node finds invalid is code 1000.
    fn call_coded(
        &self,
        job_id: &str,
        party_id: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, PartnerError> {
        let net = &self.net;
        net.calls.lock().push((party_id.into(), path.into()));
        let answer = net
            .answers
            .lock()
            .get(party_id)
            .cloned()
            .unwrap_or(Answer::Normal);
        let unreachable = || {
            std::thread::sleep(timeout.min(Duration::from_millis(50)));
            Err(PartnerError::from(format!(
                "no answer from party {party_id} within {timeout:?}"
            )))
        };
        match answer {
            Answer::FailCreate(msg) if path == paths::JOB_CREATE => return Err(msg.into()),
            Answer::SilentAfterCreate if path != paths::JOB_CREATE => return unreachable(),
            Answer::UnreachableUntil(t) if Instant::now() < t => return unreachable(),
            _ => {}
        }
        let node = net.nodes.lock().get(party_id).cloned();
        let Some(node) = node else {
            // A stub node: takes the job and reports it running.
            return Ok(match path {
                paths::JOB_COLLECT => json!({
                    "jobs": [{"role": "host", "party_id": party_id, "status": "running"}],
                    "tasks": []}),
                _ => json!({}),
            });
        };
        let from = self.from.as_str();
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        net.handle
            .block_on(async {
                match path {
                    paths::JOB_CREATE => node
                        .accept_job(from, job_id, body["dag"].clone(), &text("user_name"))
                        .await
                        .map(|()| json!({})),
                    paths::JOB_COLLECT => node.collect(from, job_id).await,
                    paths::JOB_STOP => node
                        .stop_by_partner(job_id, from, &text("reason"))
                        .await
                        .map(|()| json!({})),
                    other => panic!("unexpected partner call {other}"),
                }
            })
            .map_err(|e| PartnerError {
                code: matches!(e, SchedulerError::Plan(_)).then_some(1000),
                message: e.to_string(),
            })
    }
}

/// The guest node (initiator) at `dir`/guest; the host is a stub unless `with_host`.
async fn federation(
    dir: &Path,
    net: &Arc<Net>,
    transport: Arc<dyn Transport>,
    partner_timeout: Duration,
    with_host: bool,
) -> Scheduler {
    let guest = start(
        &dir.join("guest"),
        transport.clone(),
        Some(net.site(GUEST, partner_timeout)),
        Duration::from_secs(30),
    )
    .await;
    net.nodes.lock().insert(GUEST.into(), guest.clone());
    if with_host {
        let host = start(
            &dir.join("host"),
            transport,
            Some(net.site(HOST, partner_timeout)),
            Duration::from_secs(30),
        )
        .await;
        net.nodes.lock().insert(HOST.into(), host);
    }
    guest
}

/// The toy between guest and host with engine settings: `conf` job-wide, `host_conf` for the
/// host only.
fn toy_with_engines(conf: Value, host_conf: Value) -> fate_dag::DagSchema {
    let mut v = json!({"dag": {
        "parties": [{"role": "guest", "party_id": [GUEST]}, {"role": "host", "party_id": [HOST]}],
        "conf": conf,
        "tasks": {"toy_example_0": {"component_ref": "toy_example",
                                    "parameters": {"data_num": 100, "partition": 2}}},
        "party_tasks": {"the_host": {"parties": [{"role": "host", "party_id": [HOST]}],
                                     "conf": host_conf}}
    }, "schema_version": "2.2.0"});
    if v["dag"]["conf"].is_null() {
        v["dag"].as_object_mut().unwrap().remove("conf");
    }
    dag(v)
}

async fn no_jobs(s: &Scheduler) {
    let rows = s.store().jobs(&JobFilter::default()).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

/// A setting the host's node cannot honour fails the submit at the initiator with one error
/// naming the host and the field, and the job exists at neither node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_setting_a_partner_refuses_fails_the_submit_and_leaves_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    let guest = federation(
        dir.path(),
        &net,
        LocalTransport::new(),
        Duration::from_secs(5),
        true,
    )
    .await;
    let host = net.nodes.lock()[HOST].clone();
    let cases = [
        (
            json!({"computing_engine": "SPARK"}),
            "dag.party_tasks.the_host.conf.computing_engine",
            "computes on its local engine only, not SPARK",
        ),
        (
            json!({"storage_engine": "HDFS"}),
            "dag.party_tasks.the_host.conf.storage_engine",
            "keeps its tables in its standalone store, not HDFS",
        ),
        (
            json!({"federation_engine": "STANDALONE"}),
            "dag.party_tasks.the_host.conf.federation_engine",
            "federates with other nodes",
        ),
        (
            json!({"federation_engine": "PULSAR"}),
            "dag.party_tasks.the_host.conf.federation_engine",
            "PULSAR need node.yaml `federation: rabbitmq` or `federation: pulsar`",
        ),
    ];
    for (host_conf, field, words) in cases {
        let err = guest
            .submit(toy_with_engines(Value::Null, host_conf.clone()), "")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("party 10000"), "{host_conf}: {err}");
        assert!(err.contains("(party host 10000)"), "{host_conf}: {err}");
        assert!(err.contains(field), "{host_conf}: {err}");
        assert!(err.contains(words), "{host_conf}: {err}");
        no_jobs(&guest).await;
        no_jobs(&host).await;
    }
    // The initiator's own parties are checked before anything is created anywhere.
    let creates = net.calls_to(HOST, paths::JOB_CREATE);
    let err = guest
        .submit(
            toy_with_engines(json!({"computing_engine": "spark"}), json!({})),
            "",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::Plan(_)), "{err}");
    let err = err.to_string();
    assert!(err.contains("dag.conf.computing_engine"), "{err}");
    assert!(err.contains("(party guest 9999)"), "{err}");
    assert_eq!(net.calls_to(HOST, paths::JOB_CREATE), creates);
    no_jobs(&guest).await;
    no_jobs(&host).await;
    // What the nodes can honour runs: STANDALONE for the host, the default for the guest.
    let job = guest
        .submit(
            toy_with_engines(
                json!({"federation_engine": "EGGROLL"}),
                json!({"computing_engine": "STANDALONE", "storage_engine": "standalone"}),
            ),
            "",
        )
        .await
        .unwrap();
    let status = guest
        .wait(&job.job_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_fails_create_fails_the_job_naming_the_party() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    net.answer(HOST, Answer::FailCreate("table exp.h not found".into()));
    let guest = federation(
        dir.path(),
        &net,
        LocalTransport::new(),
        Duration::from_secs(5),
        false,
    )
    .await;
    let err = guest.submit(toy_dag(), "").await.unwrap_err().to_string();
    assert!(err.contains("party 10000"), "{err}");
    assert!(err.contains("table exp.h not found"), "{err}");
    let rows = guest.store().jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for j in rows {
        assert_eq!(j.status, JobStatus::Failed, "{j:?}");
        assert!(j.error.unwrap_or_default().contains("party 10000"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partner_ends_the_job_within_the_partner_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    net.answer(HOST, Answer::SilentAfterCreate);
    let timeout = Duration::from_secs(1);
    let guest = federation(dir.path(), &net, LocalTransport::new(), timeout, false).await;
    let started = Instant::now();
    let job = guest.submit(toy_dag(), "").await.unwrap();
    let status = guest
        .wait(&job.job_id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Failed);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let error = job_error(&guest, &job.job_id).await;
    assert!(
        error.contains("party 10000 has been unreachable"),
        "{error}"
    );
    // The guest's own task, waiting on the host's message, was woken and ended.
    let t = tasks(&guest, &job.job_id).await;
    assert!(t.iter().all(|t| t.status.is_end()), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_delayed_less_than_the_federation_timeout_still_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    let faulty = FaultyTransport::new(LocalTransport::new());
    faulty.set(HOST, Fault::Delay(Duration::from_millis(300)));
    faulty.set(GUEST, Fault::Delay(Duration::from_millis(300)));
    let guest = federation(
        dir.path(),
        &net,
        faulty.clone(),
        Duration::from_secs(5),
        true,
    )
    .await;
    let job = guest.submit(toy_dag(), "").await.unwrap();
    let status = guest
        .wait(&job.job_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        status,
        JobStatus::Success,
        "{}",
        job_error(&guest, &job.job_id).await
    );
    assert!(faulty.delayed() >= 2, "{}", faulty.delayed());
    let host = net.nodes.lock()[HOST].clone();
    assert_eq!(
        host.wait(&job.job_id, Duration::from_secs(10))
            .await
            .unwrap(),
        JobStatus::Success
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_shorter_than_the_partner_timeout_heals() {
    assert_eq!(
        Site::new(
            Vec::<String>::new(),
            Arc::new(NodePartners {
                from: GUEST.into(),
                net: Net::new()
            })
        )
        .partner_timeout,
        FederationConfig::default().timeout,
        "the partner timeout defaults to the federation timeout"
    );
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    let faulty = FaultyTransport::new(LocalTransport::new());
    let partition = Duration::from_millis(1500);
    let heal = Instant::now() + partition;
    // Both directions, control plane and data plane, for `partition`.
    net.answer(GUEST, Answer::UnreachableUntil(heal));
    faulty.set(HOST, Fault::Delay(partition));
    faulty.set(GUEST, Fault::Delay(partition));
    let guest = federation(
        dir.path(),
        &net,
        faulty.clone(),
        Duration::from_secs(4),
        true,
    )
    .await;
    let job = guest.submit(toy_dag(), "").await.unwrap();
    net.answer(HOST, Answer::UnreachableUntil(heal));
    let status = guest
        .wait(&job.job_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        status,
        JobStatus::Success,
        "{}",
        job_error(&guest, &job.job_id).await
    );
    assert!(net.calls_to(HOST, paths::JOB_COLLECT) > 0);
}

// --- Graceful shutdown ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_running_jobs_records_why_and_stops_partners() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    // The stub host never sends: the guest's toy task waits on it until canceled.
    let guest = federation(
        dir.path(),
        &net,
        LocalTransport::new(),
        Duration::from_secs(60),
        false,
    )
    .await;
    let job = guest.submit(toy_dag(), "").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tasks(&guest, &job.job_id)
        .await
        .iter()
        .any(|t| t.role == Role::Guest && t.status == TaskStatus::Running)
    {
        assert!(Instant::now() < deadline, "the guest task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = guest.shutdown(Duration::from_secs(10)).await.unwrap();
    assert_eq!(ended, vec![job.job_id.clone()]);
    for j in jobs(&guest, &job.job_id).await {
        assert_eq!(j.status, JobStatus::Canceled, "{j:?}");
        assert_eq!(j.error.as_deref(), Some(SHUTDOWN_REASON), "{j:?}");
    }
    let guest_task = tasks(&guest, &job.job_id)
        .await
        .into_iter()
        .find(|t| t.role == Role::Guest)
        .unwrap();
    assert_eq!(guest_task.status, TaskStatus::Canceled, "{guest_task:?}");
    assert_eq!(guest_task.error.as_deref(), Some(SHUTDOWN_REASON));
    assert!(
        net.calls_to(HOST, paths::JOB_STOP) >= 1,
        "the host was told to stop"
    );
    // No new jobs.
    let err = guest.submit(toy_dag(), "").await.unwrap_err().to_string();
    assert!(err.contains("shutting down"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_in_the_store_what_ignores_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    let s = standalone(dir.path()).await;
    let job = s.submit(stubborn_dag(), "").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tasks(&s, &job.job_id)
        .await
        .iter()
        .any(|t| t.status == TaskStatus::Running)
    {
        assert!(Instant::now() < deadline, "the task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = s.shutdown(Duration::from_millis(100)).await.unwrap();
    assert_eq!(ended, vec![job.job_id.clone()]);
    let check = |jobs: Vec<JobRecord>, tasks: Vec<TaskRecord>| {
        for j in jobs {
            assert_eq!(j.status, JobStatus::Canceled, "{j:?}");
            assert_eq!(j.error.as_deref(), Some(SHUTDOWN_REASON), "{j:?}");
        }
        for t in tasks {
            assert_eq!(t.status, TaskStatus::Canceled, "{t:?}");
            assert_eq!(t.error.as_deref(), Some(SHUTDOWN_REASON), "{t:?}");
        }
    };
    check(jobs(&s, &job.job_id).await, tasks(&s, &job.job_id).await);
    // The component finishing later changes nothing: the store's transitions refuse it.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    check(jobs(&s, &job.job_id).await, tasks(&s, &job.job_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_shuts_down_tells_the_initiator() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::new();
    let faulty = FaultyTransport::new(LocalTransport::new());
    // The host's task waits on a frame that takes far longer than the test.
    faulty.set(HOST, Fault::Delay(Duration::from_secs(120)));
    let guest = federation(dir.path(), &net, faulty, Duration::from_secs(60), true).await;
    let host = net.nodes.lock()[HOST].clone();
    let job = guest.submit(toy_dag(), "").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tasks(&host, &job.job_id)
        .await
        .iter()
        .any(|t| t.status == TaskStatus::Running)
    {
        assert!(Instant::now() < deadline, "the host task never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.shutdown(Duration::from_secs(10)).await.unwrap();
    for j in jobs(&host, &job.job_id).await {
        assert_eq!(j.status, JobStatus::Canceled, "{j:?}");
        assert_eq!(j.error.as_deref(), Some(SHUTDOWN_REASON));
    }
    // Well within the 60 s partner timeout: the initiator was told, not left to notice.
    let status = guest
        .wait(&job.job_id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(status, JobStatus::Canceled);
    let error = job_error(&guest, &job.job_id).await;
    assert!(
        error.contains("party 10000") && error.contains(SHUTDOWN_REASON),
        "{error}"
    );
}

/// The in-process transport under a broker backend's name, recording the options the
/// scheduler gives it and the largest frame it carries.
struct BrokerNamed {
    inner: Arc<LocalTransport>,
    name: &'static str,
    runs: Mutex<Vec<(String, fate_types::Party, fate_types::BrokerRun)>>,
    largest: std::sync::atomic::AtomicUsize,
}

impl Transport for BrokerNamed {
    fn send(
        &self,
        key: &fate_federation::MessageKey,
        frame: Vec<u8>,
    ) -> Result<(), fate_federation::FederationError> {
        self.largest
            .fetch_max(frame.len(), std::sync::atomic::Ordering::SeqCst);
        self.inner.send(key, frame)
    }

    fn recv(
        &self,
        key: &fate_federation::MessageKey,
        deadline: Instant,
        cancel: &fate_federation::CancelToken,
    ) -> Result<Vec<u8>, fate_federation::FederationError> {
        self.inner.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn configure_session(
        &self,
        session_id: &str,
        party: &fate_types::Party,
        run: &fate_types::BrokerRun,
    ) {
        self.runs
            .lock()
            .push((session_id.into(), party.clone(), run.clone()));
    }
}

/// Runs `big_object` with job conf `conf` on a node whose transport is named `name`; what the
/// transport was given, and its largest frame.
async fn toy_on_broker(
    name: &'static str,
    conf: Value,
) -> (
    Vec<(String, fate_types::Party, fate_types::BrokerRun)>,
    usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let transport = Arc::new(BrokerNamed {
        inner: LocalTransport::new(),
        name,
        runs: Mutex::new(Vec::new()),
        largest: Default::default(),
    });
    let s = start(dir.path(), transport.clone(), None, Duration::from_secs(30)).await;
    let mut v = json!({"dag": {
        "parties": [{"role": "guest", "party_id": [GUEST]}, {"role": "host", "party_id": [HOST]}],
        "conf": conf,
        "tasks": {"big_object_0": {"component_ref": "big_object"}}
    }, "schema_version": "2.2.0"});
    if v["dag"]["conf"].is_null() {
        v["dag"].as_object_mut().unwrap().remove("conf");
    }
    let job = s.submit(dag(v), "").await.unwrap();
    let status = s.wait(&job.job_id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        status,
        JobStatus::Success,
        "{}",
        job_error(&s, &job.job_id).await
    );
    let runs = transport.runs.lock().clone();
    (
        runs,
        transport.largest.load(std::sync::atomic::Ordering::SeqCst),
    )
}

/// FATE's `rabbitmq_run` reaches a RabbitMQ node's transport for every party of every task,
/// and its `max_message_size` slices the job's objects; `pulsar_run` is not for it, and a node
/// on another transport is given neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_broker_run_options_reach_its_transport_and_slice_its_objects() {
    let run = json!({"max_message_size": 1024, "connection": {"heartbeat": 7},
                     "queue": {"durable": true}});
    let (_, whole) = toy_on_broker("rabbitmq", Value::Null).await;
    assert!(
        whole > fate_federation::wire::max_frame_len(1024),
        "the task's objects must be larger than the slice for this test to mean anything: {whole}"
    );
    let (runs, largest) = toy_on_broker(
        "rabbitmq",
        json!({"rabbitmq_run": run, "pulsar_run": {"topic_ttl": 5}}),
    )
    .await;
    assert!(
        largest <= fate_federation::wire::max_frame_len(1024),
        "a frame of {largest} bytes over the job's max_message_size"
    );
    let parties: std::collections::BTreeSet<String> =
        runs.iter().map(|(_, p, _)| p.to_string()).collect();
    assert_eq!(parties.len(), 2, "both parties configured: {runs:?}");
    for (session, _, r) in &runs {
        assert!(session.contains("big_object_0"), "{session}");
        assert_eq!(r.heartbeat_secs, Some(7));
        assert_eq!(r.max_message_size, Some(1024));
        assert_eq!(r.topic_ttl_minutes, None, "pulsar_run given to RabbitMQ");
    }
    let (runs, largest) = toy_on_broker("grpc", json!({"rabbitmq_run": run})).await;
    assert!(runs.is_empty(), "{runs:?}");
    assert_eq!(largest, whole, "rabbitmq_run sliced a gRPC node's objects");
}
