//! The store contract: behaviour of the metadata store through its public API, every test run
//! against each backend (a SQLite file, a database on a real MariaDB server, one on a real
//! PostgreSQL server; `servers` starts them). `conformance!` at the end lists the tests; a test
//! is an `async fn(Db)` and runs once per backend (`sqlite::`, `mariadb::`, `postgres::`).

mod servers;

use fate_store::{
    AppRecord, DatabaseUrl, JobFilter, JobRecord, JobUpdate, MetaStore, MetricRecord, ModelRecord,
    OutputDataRecord, SitePermission, StoreError, TableRecord, TaskFilter, TaskRecord,
};
use fate_types::{JobStatus, Role, TaskStatus};
use serde_json::json;

fn job(job_id: &str, role: Role, party_id: &str, create_time: i64) -> JobRecord {
    JobRecord {
        job_id: job_id.into(),
        role,
        party_id: party_id.into(),
        status: JobStatus::Waiting,
        progress: 0,
        dag: json!({"dag": {"tasks": {"psi_0": {"component_ref": "psi"}}}, "schema_version": "2.2.0"}),
        model_id: job_id.into(),
        model_version: "0".into(),
        initiator_party_id: "9999".into(),
        scheduler_party_id: "9999".into(),
        parties: json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]),
        description: "toy".into(),
        user_name: "alice".into(),
        create_time,
        start_time: None,
        end_time: None,
        elapsed: None,
        error: None,
        cores: 4,
    }
}

fn task(job_id: &str, task_name: &str, version: i64, role: Role, party_id: &str) -> TaskRecord {
    TaskRecord {
        job_id: job_id.into(),
        task_id: TaskRecord::fate_task_id(job_id, task_name),
        task_name: task_name.into(),
        task_version: version,
        component: "coordinated_lr".into(),
        role,
        party_id: party_id.into(),
        status: TaskStatus::Waiting,
        parameters: json!({"max_iter": 30, "learning_rate": 0.1}),
        create_time: 1_000 + version,
        start_time: None,
        end_time: None,
        elapsed: None,
        error: None,
    }
}

fn table(namespace: &str, name: &str, count: i64) -> TableRecord {
    TableRecord {
        namespace: namespace.into(),
        name: name.into(),
        partitions: 4,
        count,
        schema: json!({"header": ["x0", "x1"], "meta": {"match_id_name": "id", "label_name": "y"}}),
        engine: "standalone".into(),
        path: format!("standalone:///{namespace}/{name}"),
        address: format!("s3://fate-tables/site/{namespace}/{name}"),
        source: json!({"job_id": "202401010000000000000", "task_name": "upload_0"}),
        create_time: 5,
    }
}

fn store_key_of(e: &StoreError) -> (&'static str, String) {
    match e {
        StoreError::NotFound { what, key } => (what, format!("not found {key}")),
        StoreError::Conflict { what, key } => (what, format!("conflict {key}")),
        StoreError::Invalid { field, reason } => (field, format!("invalid {reason}")),
        other => ("other", other.to_string()),
    }
}

/// The backend a conformance test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Db {
    Sqlite,
    Mariadb,
    Postgres,
}

/// A new, empty database of `db`: a SQLite file in its own temporary directory, or a database
/// created on the shared server.
struct Fresh {
    url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

fn fresh(db: Db) -> Fresh {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = DatabaseUrl::sqlite_file(&dir.path().join("nested/deeper/fate_flow.db"));
            Fresh {
                url,
                _dir: Some(dir),
            }
        }
        Db::Mariadb => Fresh {
            url: DatabaseUrl::parse(&servers::mariadb().fresh_database("it")).unwrap(),
            _dir: None,
        },
        Db::Postgres => Fresh {
            url: DatabaseUrl::parse(&servers::postgres().fresh_database("it")).unwrap(),
            _dir: None,
        },
    }
}

impl Fresh {
    /// One store handle on the database (as one node opens it).
    async fn open(&self) -> MetaStore {
        MetaStore::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }
}

/// A store on a fresh database of `db`, which lives as long as the store.
struct TestStore {
    store: MetaStore,
    _db: Fresh,
}

impl std::ops::Deref for TestStore {
    type Target = MetaStore;
    fn deref(&self) -> &MetaStore {
        &self.store
    }
}

async fn store(db: Db) -> TestStore {
    let fresh = fresh(db);
    TestStore {
        store: fresh.open().await,
        _db: fresh,
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

async fn job_round_trips_and_duplicate_conflicts_without_change(db: Db) {
    let store = store(db).await;
    let mut j = job("202401010000000000000", Role::Guest, "9999", 10);
    j.start_time = Some(11);
    j.error = Some("boom".into());
    store.insert_job(&j).await.unwrap();
    assert_eq!(
        store.jobs(&JobFilter::default()).await.unwrap(),
        vec![j.clone()]
    );

    let mut other = j.clone();
    other.description = "replacement".into();
    let err = store.insert_job(&other).await.unwrap_err();
    let (what, key) = store_key_of(&err);
    assert_eq!(what, "job");
    assert!(
        key.starts_with("conflict")
            && key.contains("202401010000000000000")
            && key.contains("guest:9999"),
        "{key}"
    );
    assert_eq!(
        store.jobs(&JobFilter::default()).await.unwrap(),
        vec![j],
        "old row unchanged"
    );
}

/// A job refused while being created goes with its tasks; other jobs stay.
async fn delete_job_removes_every_party_and_task_of_that_job_only(db: Db) {
    let store = store(db).await;
    for (id, role, party) in [
        ("j1", Role::Guest, "9999"),
        ("j1", Role::Host, "10000"),
        ("j2", Role::Guest, "9999"),
    ] {
        store.insert_job(&job(id, role, party, 1)).await.unwrap();
        store
            .insert_task(&task(id, "toy_0", 0, role, party))
            .await
            .unwrap();
    }
    assert_eq!(store.delete_job("j1").await.unwrap(), 2);
    assert_eq!(store.delete_job("j1").await.unwrap(), 0);
    let jobs = store.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
        ["j2"]
    );
    let tasks = store.tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(
        tasks.iter().map(|t| t.job_id.as_str()).collect::<Vec<_>>(),
        ["j2"]
    );
}

/// No database: the record's JSON form.
#[test]
fn job_serializes_with_fate_field_names() {
    let v = serde_json::to_value(job("1", Role::Host, "10000", 1)).unwrap();
    for key in [
        "job_id",
        "role",
        "party_id",
        "status",
        "progress",
        "dag",
        "model_id",
        "model_version",
        "initiator_party_id",
        "scheduler_party_id",
        "parties",
        "create_time",
        "elapsed",
        "cores",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["role"], "host");
    assert_eq!(v["status"], "waiting");
}

async fn job_filters_order_and_paging(db: Db) {
    let store = store(db).await;
    let mut all = Vec::new();
    for (i, (role, party)) in [
        (Role::Guest, "9999"),
        (Role::Host, "10000"),
        (Role::Arbiter, "10000"),
    ]
    .into_iter()
    .enumerate()
    {
        for n in 0..3i64 {
            let mut j = job(
                &format!("2024010100000000000{n}"),
                role,
                party,
                100 * n + i as i64,
            );
            if n == 2 {
                j.status = JobStatus::Running;
            }
            store.insert_job(&j).await.unwrap();
            all.push(j);
        }
    }
    let got = store.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(got.len(), 9);
    let times: Vec<i64> = got.iter().map(|j| j.create_time).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    let by_party = store
        .jobs(&JobFilter {
            party_id: Some("10000".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_party.len(), 6);
    assert!(by_party.iter().all(|j| j.party_id == "10000"));

    let one = store
        .jobs(&JobFilter {
            job_id: Some("20240101000000000001".into()),
            role: Some(Role::Arbiter),
            party_id: Some("10000".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0],
        all.iter()
            .find(|j| j.job_id.ends_with('1') && j.role == Role::Arbiter)
            .unwrap()
            .clone()
    );

    let running = store
        .jobs(&JobFilter {
            status: Some(JobStatus::Running),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 3);
    assert!(running.iter().all(|j| j.status == JobStatus::Running));

    let page = store
        .jobs(&JobFilter {
            limit: Some(2),
            offset: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page, got[1..3].to_vec());
    let tail = store
        .jobs(&JobFilter {
            offset: Some(7),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tail, got[7..].to_vec());

    // The count of a paged list ignores the page; the notes filter is a substring match
    // ignoring ASCII case (FATE-Flow's ILIKE), with LIKE's own `%`, `_` and `!` taken literally.
    let count = |f: JobFilter| {
        let store = &store;
        async move { store.count_jobs(&f).await.unwrap() }
    };
    assert_eq!(
        count(JobFilter {
            limit: Some(2),
            offset: Some(1),
            ..Default::default()
        })
        .await,
        9
    );
    assert_eq!(
        count(JobFilter {
            party_id: Some("10000".into()),
            ..Default::default()
        })
        .await,
        6
    );
    for (id, notes) in [
        ("20240101000000000000", "Credit 50%_off!"),
        ("20240101000000000001", "credit 50x off"),
    ] {
        store
            .set_job_description(id, Role::Guest, "9999", notes)
            .await
            .unwrap();
    }
    let notes = |text: &str| JobFilter {
        description: Some(text.into()),
        ..Default::default()
    };
    assert_eq!(count(notes("CREDIT")).await, 2);
    assert_eq!(count(notes("50%_off!")).await, 1, "% _ ! are literal");
    assert_eq!(count(notes("0%")).await, 1);
    assert_eq!(count(notes("nothing like it")).await, 0);
    let found = store
        .jobs(&JobFilter {
            limit: Some(1),
            ..notes("credit")
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].job_id, "20240101000000000001",
        "newest first within the filter"
    );

    let err = store
        .jobs(&JobFilter {
            limit: Some(-1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(store_key_of(&err).0, "limit");
}

async fn update_job_changes_given_fields_and_computes_elapsed(db: Db) {
    let store = store(db).await;
    let id = "202401010000000000000";
    store
        .insert_job(&job(id, Role::Guest, "9999", 10))
        .await
        .unwrap();
    let upd = JobUpdate {
        status: Some(JobStatus::Running),
        progress: Some(40),
        start_time: Some(1_000),
        ..Default::default()
    };
    store
        .update_job(id, Role::Guest, "9999", &upd)
        .await
        .unwrap();
    let upd = JobUpdate {
        end_time: Some(4_500),
        error: Some("host failed".into()),
        ..Default::default()
    };
    store
        .update_job(id, Role::Guest, "9999", &upd)
        .await
        .unwrap();
    let got = &store.jobs(&JobFilter::default()).await.unwrap()[0];
    assert_eq!(got.status, JobStatus::Running);
    assert_eq!(got.progress, 40);
    assert_eq!(
        (got.start_time, got.end_time, got.elapsed),
        (Some(1_000), Some(4_500), Some(3_500))
    );
    assert_eq!(got.error.as_deref(), Some("host failed"));
    assert_eq!(got.description, "toy", "untouched fields stay");

    // Both times in one update.
    let upd = JobUpdate {
        start_time: Some(2_000),
        end_time: Some(2_250),
        ..Default::default()
    };
    store
        .update_job(id, Role::Guest, "9999", &upd)
        .await
        .unwrap();
    assert_eq!(
        store.jobs(&JobFilter::default()).await.unwrap()[0].elapsed,
        Some(250)
    );

    for bad in [
        JobUpdate {
            progress: Some(101),
            ..Default::default()
        },
        JobUpdate {
            start_time: Some(10),
            end_time: Some(5),
            ..Default::default()
        },
    ] {
        let err = store
            .update_job(id, Role::Guest, "9999", &bad)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    }
    for upd in [
        JobUpdate::default(),
        JobUpdate {
            progress: Some(1),
            ..Default::default()
        },
    ] {
        let err = store
            .update_job(id, Role::Host, "9999", &upd)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { what: "job", .. }),
            "{err}"
        );
    }
}

async fn checked_job_transitions_follow_fate_rules(db: Db) {
    let store = store(db).await;
    let id = "202401010000000000000";
    store
        .insert_job(&job(id, Role::Guest, "9999", 10))
        .await
        .unwrap();
    let get = || async { store.jobs(&JobFilter::default()).await.unwrap().remove(0) };

    assert!(
        store
            .set_job_status_checked(id, Role::Guest, "9999", JobStatus::Running, 1_000)
            .await
            .unwrap()
    );
    let j = get().await;
    assert_eq!(
        (j.status, j.start_time, j.end_time),
        (JobStatus::Running, Some(1_000), None)
    );

    assert!(
        !store
            .set_job_status_checked(id, Role::Guest, "9999", JobStatus::Ready, 1_100)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_job_status_checked(id, Role::Guest, "9999", JobStatus::Running, 1_100)
            .await
            .unwrap(),
        "running -> running is not a transition"
    );

    assert!(
        store
            .set_job_status_checked(id, Role::Guest, "9999", JobStatus::Success, 4_000)
            .await
            .unwrap()
    );
    let j = get().await;
    assert_eq!(
        (j.status, j.end_time, j.elapsed),
        (JobStatus::Success, Some(4_000), Some(3_000))
    );

    assert!(
        !store
            .set_job_status_checked(id, Role::Guest, "9999", JobStatus::Running, 5_000)
            .await
            .unwrap(),
        "success -> running refused"
    );
    assert_eq!(get().await, j, "refused transition changes nothing");

    assert!(
        store
            .set_job_status_checked(id, Role::Guest, "9999", JobStatus::Waiting, 6_000)
            .await
            .unwrap(),
        "success -> waiting (rerun)"
    );

    let err = store
        .set_job_status_checked(id, Role::Host, "9999", JobStatus::Running, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { what: "job", .. }));
}

async fn job_that_never_started_ends_without_elapsed(db: Db) {
    let store = store(db).await;
    let mut j = job("1", Role::Guest, "9999", 1);
    j.status = JobStatus::Ready;
    store.insert_job(&j).await.unwrap();
    assert!(
        !store
            .set_job_status_checked("1", Role::Guest, "9999", JobStatus::Success, 9)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_job_status_checked("1", Role::Guest, "9999", JobStatus::Failed, 9)
            .await
            .unwrap()
    );
    let got = store.jobs(&JobFilter::default()).await.unwrap().remove(0);
    assert_eq!(
        (got.status, got.end_time, got.elapsed),
        (JobStatus::Failed, Some(9), None)
    );
}

async fn invalid_job_fields_are_rejected_by_name(db: Db) {
    let store = store(db).await;
    type Mutation = Box<dyn Fn(&mut JobRecord)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("job_id", Box::new(|j| j.job_id.clear())),
        ("job_id", Box::new(|j| j.job_id = "9".repeat(65))),
        ("party_id", Box::new(|j| j.party_id.clear())),
        ("progress", Box::new(|j| j.progress = -1)),
        ("cores", Box::new(|j| j.cores = -4)),
        ("model_id", Box::new(|j| j.model_id = "m".repeat(256))),
    ];
    for (field, mutate) in cases {
        let mut j = job("1", Role::Guest, "9999", 1);
        mutate(&mut j);
        let err = store.insert_job(&j).await.unwrap_err();
        assert_eq!(store_key_of(&err).0, field, "{err}");
    }
    assert!(store.jobs(&JobFilter::default()).await.unwrap().is_empty());
    // The limits count characters, not bytes.
    store
        .insert_job(&job(&"é".repeat(64), Role::Guest, "9999", 1))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tasks

async fn tasks_round_trip_filter_and_delete(db: Db) {
    let store = store(db).await;
    let mut inserted = Vec::new();
    for (job_id, name, version, role, party) in [
        ("j1", "psi_0", 0, Role::Guest, "9999"),
        ("j1", "psi_0", 0, Role::Host, "10000"),
        ("j1", "lr_0", 0, Role::Guest, "9999"),
        ("j1", "lr_0", 1, Role::Guest, "9999"),
        ("j2", "psi_0", 0, Role::Guest, "9999"),
    ] {
        let t = task(job_id, name, version, role, party);
        store.insert_task(&t).await.unwrap();
        inserted.push(t);
    }
    let all = store.tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(all.len(), 5);
    for t in &inserted {
        assert!(all.contains(t), "{t:?} read back unchanged");
    }
    assert_eq!(inserted[0].task_id, "j1_psi_0");

    let err = store.insert_task(&inserted[3]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { what: "task", .. }),
        "{err}"
    );

    let f = |tf: TaskFilter| {
        let store = store.clone();
        async move { store.tasks(&tf).await.unwrap() }
    };
    assert_eq!(
        f(TaskFilter {
            job_id: Some("j1".into()),
            ..Default::default()
        })
        .await
        .len(),
        4
    );
    let lr = f(TaskFilter {
        task_name: Some("lr_0".into()),
        task_version: Some(1),
        ..Default::default()
    })
    .await;
    assert_eq!(lr, vec![inserted[3].clone()]);
    let hosts = f(TaskFilter {
        role: Some(Role::Host),
        party_id: Some("10000".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(hosts, vec![inserted[1].clone()]);
    assert!(
        f(TaskFilter {
            status: Some(TaskStatus::Running),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    let paged = f(TaskFilter {
        job_id: Some("j1".into()),
        limit: Some(3),
        ..Default::default()
    })
    .await;
    assert_eq!(paged.len(), 3);

    assert_eq!(store.delete_tasks_of_job("j1").await.unwrap(), 4);
    assert_eq!(store.delete_tasks_of_job("j1").await.unwrap(), 0);
    assert_eq!(
        store.tasks(&TaskFilter::default()).await.unwrap(),
        vec![inserted[4].clone()]
    );
}

async fn checked_task_transitions_follow_fate_rules(db: Db) {
    let store = store(db).await;
    store
        .insert_task(&task("j", "lr_0", 0, Role::Guest, "9999"))
        .await
        .unwrap();
    let set = |to: TaskStatus, now: i64, error: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .set_task_status_checked("j", "lr_0", 0, Role::Guest, "9999", to, now, error)
                .await
                .unwrap()
        }
    };
    let get = || async {
        store
            .tasks(&TaskFilter {
                task_version: Some(0),
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0)
    };

    assert!(set(TaskStatus::Running, 100, None).await);
    assert_eq!(get().await.start_time, Some(100));
    assert!(
        !set(TaskStatus::Waiting, 150, None).await,
        "running -> waiting refused"
    );
    assert!(set(TaskStatus::Failed, 400, Some("host 10000: out of memory")).await);
    let t = get().await;
    assert_eq!(
        (t.status, t.end_time, t.elapsed),
        (TaskStatus::Failed, Some(400), Some(300))
    );
    assert_eq!(t.error.as_deref(), Some("host 10000: out of memory"));
    assert!(
        !set(TaskStatus::Running, 500, None).await,
        "failed -> running refused"
    );
    assert_eq!(get().await, t);

    let err = store
        .set_task_status_checked(
            "j",
            "lr_0",
            7,
            Role::Guest,
            "9999",
            TaskStatus::Running,
            1,
            None,
        )
        .await
        .unwrap_err();
    let (what, key) = store_key_of(&err);
    assert_eq!(what, "task");
    assert!(key.contains("lr_0") && key.contains("version 7"), "{key}");
}

// ---------------------------------------------------------------------------------------------
// Tables

async fn tables_conflict_overwrite_list_and_delete(db: Db) {
    let store = store(db).await;
    let first = table("experiment", "breast_hetero_guest", 569);
    store.put_table(&first, false).await.unwrap();
    assert_eq!(
        store
            .table("experiment", "breast_hetero_guest")
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.table("experiment", "missing").await.unwrap(), None);

    let second = table("experiment", "breast_hetero_guest", 1);
    let err = store.put_table(&second, false).await.unwrap_err();
    let (what, key) = store_key_of(&err);
    assert_eq!(what, "table");
    assert!(key.contains("experiment/breast_hetero_guest"), "{key}");
    assert_eq!(
        store
            .table("experiment", "breast_hetero_guest")
            .await
            .unwrap(),
        Some(first),
        "old row unchanged"
    );

    store.put_table(&second, true).await.unwrap();
    assert_eq!(
        store
            .table("experiment", "breast_hetero_guest")
            .await
            .unwrap(),
        Some(second.clone())
    );

    let other = table("another", "t", 3);
    store.put_table(&other, true).await.unwrap();
    assert_eq!(store.tables().await.unwrap(), vec![other, second]);

    assert!(
        store
            .delete_table("experiment", "breast_hetero_guest")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_table("experiment", "breast_hetero_guest")
            .await
            .unwrap()
    );
    assert_eq!(store.tables().await.unwrap().len(), 1);

    let mut bad = table("ns", "n", 1);
    bad.partitions = 0;
    assert_eq!(
        store_key_of(&store.put_table(&bad, true).await.unwrap_err()).0,
        "partitions"
    );
    let bad = table("ns", &"x".repeat(129), 1);
    assert_eq!(
        store_key_of(&store.put_table(&bad, true).await.unwrap_err()).0,
        "name"
    );
}

// ---------------------------------------------------------------------------------------------
// Outputs

fn metric(task_name: &str, name: &str, create_time: i64) -> MetricRecord {
    MetricRecord {
        job_id: "j".into(),
        role: Role::Guest,
        party_id: "9999".into(),
        task_name: task_name.into(),
        name: name.into(),
        metric_type: "loss".into(),
        groups: json!([{"name": "train", "index": null}]),
        step_axis: Some("iterations".into()),
        data: json!([{"metric": 0.69, "step": 0, "timestamp": 1.5}]),
        create_time,
    }
}

async fn metrics_append_and_filter_by_task(db: Db) {
    let store = store(db).await;
    let a = metric("lr_0", "lr_loss", 1);
    let b = metric("lr_0", "lr_loss", 2);
    let mut c = metric("eval_0", "auc", 3);
    c.step_axis = None;
    for m in [&a, &b, &c] {
        store.save_metric(m).await.unwrap();
    }
    assert_eq!(
        store.metrics("j", Role::Guest, "9999", None).await.unwrap(),
        vec![a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        store
            .metrics("j", Role::Guest, "9999", Some("lr_0"))
            .await
            .unwrap(),
        vec![a.clone(), b]
    );
    assert!(
        store
            .metrics("j", Role::Host, "9999", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        serde_json::to_value(&a).unwrap()["type"],
        "loss",
        "FATE calls it `type`"
    );
}

fn model(job_id: &str, task_name: &str, output_key: &str, model_id: &str) -> ModelRecord {
    ModelRecord {
        job_id: job_id.into(),
        role: Role::Host,
        party_id: "10000".into(),
        task_name: task_name.into(),
        output_key: output_key.into(),
        model_id: model_id.into(),
        model_version: "0".into(),
        component: "coordinated_lr".into(),
        data: json!({"coef": [0.1, -0.2], "intercept": 0.0}),
        create_time: 7,
    }
}

async fn models_upsert_and_are_found_by_model_id(db: Db) {
    let store = store(db).await;
    let m = model("j1", "lr_0", "output_model", "j1");
    store.save_model(&m).await.unwrap();
    let mut replaced = m.clone();
    replaced.data = json!({"coef": [9.0]});
    store.save_model(&replaced).await.unwrap();
    let other_key = model("j1", "lr_0", "train_output_model", "j1");
    store.save_model(&other_key).await.unwrap();
    let other_task = model("j1", "binning_0", "output_model", "j1");
    store.save_model(&other_task).await.unwrap();
    let other_job = model("j2", "lr_0", "output_model", "m2");
    store.save_model(&other_job).await.unwrap();

    assert_eq!(
        store.models("j1", Role::Host, "10000", None).await.unwrap(),
        vec![other_task.clone(), replaced.clone(), other_key.clone()]
    );
    assert_eq!(
        store
            .models("j1", Role::Host, "10000", Some("lr_0"))
            .await
            .unwrap(),
        vec![replaced.clone(), other_key.clone()]
    );
    assert_eq!(
        store
            .models_by_model_id("j1", "0", Role::Host, "10000")
            .await
            .unwrap(),
        vec![other_task, replaced, other_key]
    );
    assert_eq!(
        store
            .models_by_model_id("m2", "0", Role::Host, "10000")
            .await
            .unwrap(),
        vec![other_job]
    );
    assert!(
        store
            .models_by_model_id("j1", "1", Role::Host, "10000")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .models_by_model_id("j1", "0", Role::Guest, "10000")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn output_data_references_round_trip(db: Db) {
    let store = store(db).await;
    let d = |task: &str, key: &str, name: &str, t: i64| OutputDataRecord {
        job_id: "j".into(),
        role: Role::Guest,
        party_id: "9999".into(),
        task_name: task.into(),
        output_key: key.into(),
        namespace: "output_data_j".into(),
        name: name.into(),
        create_time: t,
    };
    let a = d("psi_0", "output_data", "a", 1);
    let b = d("split_0", "train_output_data", "b", 2);
    let c = d("split_0", "train_output_data", "c", 3);
    for x in [&a, &b, &c] {
        store.save_output_data(x).await.unwrap();
    }
    let again = d("psi_0", "output_data", "a", 9);
    store.save_output_data(&again).await.unwrap();
    assert_eq!(
        store
            .output_data("j", Role::Guest, "9999", None)
            .await
            .unwrap(),
        vec![again, b.clone(), c.clone()]
    );
    assert_eq!(
        store
            .output_data("j", Role::Guest, "9999", Some("split_0"))
            .await
            .unwrap(),
        vec![b, c]
    );
    assert!(
        store
            .output_data("j", Role::Guest, "10000", None)
            .await
            .unwrap()
            .is_empty()
    );
    let err = store
        .save_output_data(&d("psi_0", "", "a", 1))
        .await
        .unwrap_err();
    assert_eq!(store_key_of(&err).0, "output_key");
}

// ---------------------------------------------------------------------------------------------
// Apps and site permissions

async fn apps_roles_and_site_permissions(db: Db) {
    let store = store(db).await;
    let app = |id: &str, name: &str, t: i64| AppRecord {
        app_id: id.into(),
        app_name: name.into(),
        app_token: format!("token-{id}"),
        app_type: "client".into(),
        create_time: t,
    };
    let (a, b) = (app("a1", "alice", 1), app("b1", "bob", 2));
    store.create_app(&a).await.unwrap();
    store.create_app(&b).await.unwrap();
    // The name is unique too; the conflict names it and changes nothing.
    let err = store.create_app(&app("a2", "alice", 3)).await.unwrap_err();
    assert_eq!(store_key_of(&err), ("app", "conflict alice".into()));
    assert_eq!(store.app("a1").await.unwrap(), Some(a.clone()));
    assert_eq!(store.app("zz").await.unwrap(), None);
    assert_eq!(
        store.apps(None, None).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(store.apps(Some("b1"), None).await.unwrap(), vec![b.clone()]);
    assert_eq!(
        store.apps(None, Some("alice")).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(store.apps(Some("b1"), Some("alice")).await.unwrap(), vec![]);
    // Keys compare byte for byte on every backend: case and trailing spaces matter.
    assert_eq!(store.apps(None, Some("ALICE")).await.unwrap(), vec![]);
    assert_eq!(store.apps(None, Some("alice ")).await.unwrap(), vec![]);
    store.create_app(&app("A1", "Alice", 4)).await.unwrap();
    store.create_app(&app("a1 ", "alice ", 5)).await.unwrap();
    assert_eq!(store.apps(None, None).await.unwrap().len(), 4);

    store.grant_role("a1", "super_client").await.unwrap();
    store.grant_role("a1", "client").await.unwrap();
    store.grant_role("a1", "client").await.unwrap();
    assert_eq!(
        store.roles("a1").await.unwrap(),
        vec!["client", "super_client"]
    );
    let err = store.grant_role("nobody", "client").await.unwrap_err();
    assert_eq!(store_key_of(&err).0, "app_id");
    assert!(store.revoke_role("a1", "super_client").await.unwrap());
    assert!(!store.revoke_role("a1", "super_client").await.unwrap());
    assert_eq!(store.roles("a1").await.unwrap(), vec!["client"]);
    // Deleting an app takes its roles.
    assert!(store.delete_app("a1").await.unwrap());
    assert!(!store.delete_app("a1").await.unwrap());
    assert_eq!(store.app("a1").await.unwrap(), None);
    assert!(store.roles("a1").await.unwrap().is_empty());
    store.create_app(&app("a1", "alice", 6)).await.unwrap();
    assert!(store.roles("a1").await.unwrap().is_empty());

    let perm = |party: &str, kind: &str, value: &str| SitePermission {
        party_id: party.into(),
        kind: kind.into(),
        value: value.into(),
    };
    for p in [
        perm("10000", "component", "psi"),
        perm("10000", "component", "coordinated_lr"),
        perm("10000", "dataset", "experiment|breast_hetero_host"),
        perm("10000", "component", "psi"),
        perm("9999", "component", "psi"),
    ] {
        store.grant_site_permission(&p).await.unwrap();
    }
    assert_eq!(
        store.site_permissions("10000").await.unwrap(),
        vec![
            perm("10000", "component", "coordinated_lr"),
            perm("10000", "component", "psi"),
            perm("10000", "dataset", "experiment|breast_hetero_host"),
        ]
    );
    assert_eq!(
        store
            .delete_site_permissions("10000", "component", Some("psi"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .delete_site_permissions("10000", "component", None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.site_permissions("10000").await.unwrap(),
        vec![perm("10000", "dataset", "experiment|breast_hetero_host")]
    );
    assert_eq!(store.site_permissions("9999").await.unwrap().len(), 1);
    let err = store
        .grant_site_permission(&perm("10000", "component", &"x".repeat(301)))
        .await
        .unwrap_err();
    assert_eq!(store_key_of(&err).0, "value");
}

// ---------------------------------------------------------------------------------------------
// Values every backend must keep whole

/// Documents past MariaDB's 64 KiB TEXT, non-ASCII text, and the largest times and counts
/// come back exactly as written.
async fn large_and_unicode_values_round_trip(db: Db) {
    let store = store(db).await;
    let mut j = job("202401010000000000000", Role::Guest, "9999", i64::MAX);
    let big: Vec<String> = (0..20_000).map(|i| format!("任务-{i}")).collect();
    j.dag = json!({"tasks": big});
    assert!(j.dag.to_string().len() > 200_000);
    j.description = "ünïcödé 说明 🚀".into();
    j.error = Some("x".repeat(100_000));
    j.start_time = Some(i64::MIN + 1);
    store.insert_job(&j).await.unwrap();
    assert_eq!(store.jobs(&JobFilter::default()).await.unwrap(), vec![j]);
    let mut t = table("命名空间", "表", i64::MAX);
    t.schema = json!({"header": (0..5000).map(|i| format!("x{i}")).collect::<Vec<_>>()});
    store.put_table(&t, false).await.unwrap();
    assert_eq!(store.table("命名空间", "表").await.unwrap(), Some(t));
}

// ---------------------------------------------------------------------------------------------
// Persistence, migrations, concurrency

async fn reopened_store_persists_and_migrations_are_idempotent(db: Db) {
    let fresh = fresh(db);
    let j = job("202401010000000000000", Role::Guest, "9999", 10);
    let t = table("experiment", "x", 10);
    {
        let store = fresh.open().await;
        assert_eq!(store.schema_version().await.unwrap(), 3);
        store.insert_job(&j).await.unwrap();
        store.put_table(&t, false).await.unwrap();
        // A second store on the same database (migrations already applied) sees the same data.
        let second = fresh.open().await;
        assert_eq!(
            second.table("experiment", "x").await.unwrap(),
            Some(t.clone())
        );
        second.close().await;
        store.close().await;
    }
    if let Some(path) = fresh.url.to_string().strip_prefix("sqlite://") {
        assert!(std::path::Path::new(path).exists());
    }
    let reopened = fresh.open().await;
    assert_eq!(reopened.schema_version().await.unwrap(), 3);
    assert_eq!(reopened.jobs(&JobFilter::default()).await.unwrap(), vec![j]);
    assert_eq!(reopened.tables().await.unwrap(), vec![t.clone()]);
    assert_eq!(
        reopened
            .table("experiment", "x")
            .await
            .unwrap()
            .unwrap()
            .address,
        "s3://fate-tables/site/experiment/x"
    );
    let long = TableRecord {
        address: "s".repeat(2049),
        ..t
    };
    let err = reopened.put_table(&long, true).await.unwrap_err();
    assert!(err.to_string().contains("address"), "{err}");
    reopened.close().await;
}

/// Two store handles on one database, as two nodes sharing nothing but the database server,
/// race to end the same job and the same task: exactly one transition wins each time, and what
/// is stored is the winner's.
async fn concurrent_checked_transitions_apply_exactly_one(db: Db) {
    let fresh = fresh(db);
    let (node_a, node_b) = (fresh.open().await, fresh.open().await);
    for round in 0..10 {
        let id = format!("job{round}");
        let mut j = job(&id, Role::Guest, "9999", round);
        j.status = JobStatus::Running;
        j.start_time = Some(0);
        node_a.insert_job(&j).await.unwrap();
        let mut t = task(&id, "lr_0", 0, Role::Guest, "9999");
        t.status = TaskStatus::Running;
        t.start_time = Some(0);
        node_b.insert_task(&t).await.unwrap();
        let (s1, s2) = (node_a.clone(), node_b.clone());
        let (id1, id2) = (id.clone(), id.clone());
        let a = tokio::spawn(async move {
            let job = s1
                .set_job_status_checked(&id1, Role::Guest, "9999", JobStatus::Success, 10)
                .await;
            let task = s1
                .set_task_status_checked(
                    &id1,
                    "lr_0",
                    0,
                    Role::Guest,
                    "9999",
                    TaskStatus::Success,
                    10,
                    None,
                )
                .await;
            (job.unwrap(), task.unwrap())
        });
        let b = tokio::spawn(async move {
            let job = s2
                .set_job_status_checked(&id2, Role::Guest, "9999", JobStatus::Failed, 20)
                .await;
            let task = s2
                .set_task_status_checked(
                    &id2,
                    "lr_0",
                    0,
                    Role::Guest,
                    "9999",
                    TaskStatus::Failed,
                    20,
                    Some("node b"),
                )
                .await;
            (job.unwrap(), task.unwrap())
        });
        let ((job_a, task_a), (job_b, task_b)) = (a.await.unwrap(), b.await.unwrap());
        assert!(
            job_a ^ job_b,
            "exactly one end status of the job wins (success: {job_a}, failed: {job_b})"
        );
        assert!(
            task_a ^ task_b,
            "exactly one end status of the task wins (success: {task_a}, failed: {task_b})"
        );
        let got = node_b
            .jobs(&JobFilter {
                job_id: Some(id.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0);
        let expected = if job_a {
            (JobStatus::Success, Some(10))
        } else {
            (JobStatus::Failed, Some(20))
        };
        assert_eq!((got.status, got.end_time), expected);
        let got = node_a
            .tasks(&TaskFilter {
                job_id: Some(id),
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0);
        let expected = if task_a {
            (TaskStatus::Success, Some(10), None)
        } else {
            (TaskStatus::Failed, Some(20), Some("node b".to_string()))
        };
        assert_eq!((got.status, got.end_time, got.error), expected);
    }
    node_a.close().await;
    node_b.close().await;
}

/// Two nodes move many tasks of one job through waiting → running → success at once, each
/// its own half, while both append metrics and replace models and output references: no
/// update is lost and no writer fails (no deadlock, no "database is locked").
async fn two_nodes_updating_at_once_lose_no_update(db: Db) {
    let fresh = fresh(db);
    let nodes = [fresh.open().await, fresh.open().await];
    let id = "202401010000000000000";
    const N_TASKS: i64 = 24;
    for v in 0..N_TASKS {
        nodes[0]
            .insert_task(&task(id, "lr_0", v, Role::Guest, "9999"))
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let node = node.clone();
        handles.push(tokio::spawn(async move {
            for v in (0..N_TASKS).filter(|v| *v as usize % 2 == n) {
                for to in [TaskStatus::Running, TaskStatus::Success] {
                    let applied = node
                        .set_task_status_checked(id, "lr_0", v, Role::Guest, "9999", to, 5, None)
                        .await
                        .unwrap();
                    assert!(applied, "node {n}: task version {v} to {to} refused");
                }
                node.save_metric(&MetricRecord {
                    job_id: id.into(),
                    role: Role::Guest,
                    party_id: "9999".into(),
                    task_name: format!("task_{v}"),
                    name: "loss".into(),
                    metric_type: "loss".into(),
                    groups: json!([]),
                    step_axis: None,
                    data: json!([v]),
                    create_time: v,
                })
                .await
                .unwrap();
                for round in 0..2 {
                    node.save_model(&ModelRecord {
                        job_id: id.into(),
                        role: Role::Guest,
                        party_id: "9999".into(),
                        task_name: format!("task_{v}"),
                        output_key: "output_model".into(),
                        model_id: "m".into(),
                        model_version: "0".into(),
                        component: "coordinated_lr".into(),
                        data: json!({"round": round}),
                        create_time: v,
                    })
                    .await
                    .unwrap();
                    node.save_output_data(&OutputDataRecord {
                        job_id: id.into(),
                        role: Role::Guest,
                        party_id: "9999".into(),
                        task_name: format!("task_{v}"),
                        output_key: "train_output_data".into(),
                        namespace: "output_data".into(),
                        name: format!("t{v}"),
                        create_time: round,
                    })
                    .await
                    .unwrap();
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let tasks = nodes[1]
        .tasks(&TaskFilter {
            job_id: Some(id.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tasks.len(), N_TASKS as usize);
    for t in &tasks {
        assert_eq!(
            (t.status, t.start_time, t.end_time),
            (TaskStatus::Success, Some(5), Some(5)),
            "task version {}",
            t.task_version
        );
    }
    let metrics = nodes[0]
        .metrics(id, Role::Guest, "9999", None)
        .await
        .unwrap();
    assert_eq!(metrics.len(), N_TASKS as usize);
    let models = nodes[0]
        .models(id, Role::Guest, "9999", None)
        .await
        .unwrap();
    assert_eq!(models.len(), N_TASKS as usize);
    assert!(models.iter().all(|m| m.data == json!({"round": 1})));
    let outputs = nodes[1]
        .output_data(id, Role::Guest, "9999", None)
        .await
        .unwrap();
    assert_eq!(outputs.len(), N_TASKS as usize);
    assert!(outputs.iter().all(|o| o.create_time == 1));
}

// ---------------------------------------------------------------------------------------------
// The suite, once per backend

/// Runs each listed `async fn(Db)` as a test on SQLite, MariaDB and PostgreSQL.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Sqlite).await
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Mariadb).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Postgres).await
                }
            )*
        }
    };
}

conformance!(
    job_round_trips_and_duplicate_conflicts_without_change,
    delete_job_removes_every_party_and_task_of_that_job_only,
    job_filters_order_and_paging,
    update_job_changes_given_fields_and_computes_elapsed,
    checked_job_transitions_follow_fate_rules,
    job_that_never_started_ends_without_elapsed,
    invalid_job_fields_are_rejected_by_name,
    tasks_round_trip_filter_and_delete,
    checked_task_transitions_follow_fate_rules,
    tables_conflict_overwrite_list_and_delete,
    metrics_append_and_filter_by_task,
    models_upsert_and_are_found_by_model_id,
    output_data_references_round_trip,
    apps_roles_and_site_permissions,
    large_and_unicode_values_round_trip,
    reopened_store_persists_and_migrations_are_idempotent,
    concurrent_checked_transitions_apply_exactly_one,
    two_nodes_updating_at_once_lose_no_update,
);

/// An unreachable server fails at open, naming the URL without its password.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("mysql://fate:s3cret@127.0.0.1:{port}/fate"),
        format!("postgres://fate:s3cret@127.0.0.1:{port}/fate"),
    ] {
        let started = std::time::Instant::now();
        let err = MetaStore::open(&DatabaseUrl::parse(&url).unwrap())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("fate:***@127.0.0.1:{port}/fate")) && !text.contains("s3cret"),
            "{text}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{url}: took {:?}",
            started.elapsed()
        );
    }
}

/// A database that does not exist on a running server is an error naming it, and nothing is
/// created.
#[tokio::test]
async fn a_missing_database_is_an_error() {
    for server in [servers::mariadb(), servers::postgres()] {
        let url = DatabaseUrl::parse(&server.url("no_such_db")).unwrap();
        let err = MetaStore::open(&url).await.unwrap_err().to_string();
        assert!(
            err.contains("no_such_db") && !err.contains(":fate@"),
            "{err}"
        );
    }
}
