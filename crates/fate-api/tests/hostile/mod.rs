//! The hostile-input suite for REST, CSV and DAG/DSL (issue #10): one table of crafted
//! requests, each driven through the router of a real node (SQLite, redb, in-process
//! federation). Every case asserts
//! - a clear error: FATE's code and the field (or party) named in the message;
//! - an unchanged store: the same jobs (at most a failed load job for a bad CSV) and the same
//!   tables, no file created outside the node's data dir, nothing left in `uploads`;
//! - a live node: the toy job succeeds after every batch of cases and at the end.
//!
//! Partner cases run against a second node that is one site of a federation (hosting 10000)
//! with partners that cannot be reached.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use fate_computing::{Computing, ComputingConfig};
use fate_federation::FederationConfig;
use fate_federation::local::LocalTransport;
use fate_scheduler::{Partners, Scheduler, SchedulerConfig, Site};
use fate_store::{JobFilter, MetaStore};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Largest file (and multipart upload) the hostile node accepts.
const FILE_LIMIT: u64 = 1 << 20;

pub(super) struct Hostile {
    app: Router,
    /// The partner endpoints, as the node's relay reaches them (caller: party 9999).
    partner: Router,
    pub(super) scheduler: Scheduler,
    root: PathBuf,
}

/// Partners nobody can reach: a site node refuses or fails every job that needs them.
pub(super) struct Unreachable;

impl Partners for Unreachable {
    fn call(&self, _: &str, party: &str, _: &str, _: &Value, _: Duration) -> Result<Value, String> {
        Err(format!("node of {party}: unreachable (test)"))
    }
}

/// `root/data` is the data dir; `root/import` and `root/data/uploads` are the data roots;
/// `root/outside` holds a secret no request may read.
pub(super) async fn hostile_node(root: &Path, site: Option<Site>) -> Hostile {
    let data = root.join("data");
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(root.join("outside/secret.csv"), "id,x\nSECRET,1\n").unwrap();
    let computing = Computing::new(ComputingConfig {
        cores: 2,
        default_partitions: 4,
        data_dir: Some(data.join("tables")),
    })
    .unwrap();
    let store = MetaStore::open_sqlite(&data.join("fate_flow.sqlite"))
        .await
        .unwrap();
    let scheduler = Scheduler::new(
        store,
        computing,
        LocalTransport::new(),
        fate_components::registry(),
        SchedulerConfig {
            logs_dir: data.join("logs"),
            federation: FederationConfig {
                timeout: Duration::from_secs(30),
                ..FederationConfig::default()
            },
            site,
            data_roots: fate_runtime::DataRoots::new(
                [root.join("import"), data.join("uploads")].map(|d| {
                    std::fs::create_dir_all(&d).unwrap();
                    d
                }),
                FILE_LIMIT,
            )
            .unwrap(),
            engines: None,
        },
    )
    .await
    .unwrap();
    let state = fate_api::ApiState {
        scheduler: scheduler.clone(),
        upload_dir: data.join("uploads"),
        address: "127.0.0.1:9380".into(),
        auth: None,
        board: None,
        serving: Default::default(),
    };
    let partner = fate_api::partner_router(state.clone());
    let app = fate_api::router(state);
    Hostile {
        app,
        partner,
        scheduler,
        root: std::fs::canonicalize(root).unwrap(),
    }
}

/// What a request sends.
enum Req {
    /// A body with `content-type: application/json` (it need not be JSON).
    Json(Vec<u8>),
    /// A GET with this query string.
    Get,
    /// A multipart body: text fields, then optional file fields (name, bytes).
    Multipart(Vec<(String, String)>, Vec<(String, Vec<u8>)>),
    /// Raw bytes with a content type.
    Raw(&'static str, Vec<u8>),
}

/// What the answer must be.
#[derive(Clone, Copy)]
enum Expect {
    /// FATE's envelope with this code; the message names `.1`.
    Code(i64, &'static str),
    /// FATE 1.x's envelope (`/v1/job/submit`) with this retcode; the message names `.1`.
    Retcode(i64, &'static str),
}

struct Case {
    name: String,
    uri: String,
    send: Req,
    expect: Expect,
    /// A bad CSV is refused by the load job it starts: that failed job is the one row allowed.
    allows_failed_job: bool,
}

fn case(name: impl Into<String>, uri: &str, send: Req, expect: Expect) -> Case {
    Case {
        name: name.into(),
        uri: uri.to_string(),
        send,
        expect,
        allows_failed_job: false,
    }
}

fn json_body(v: Value) -> Req {
    Req::Json(v.to_string().into_bytes())
}

impl Hostile {
    async fn send(&self, uri: &str, send: &Req) -> (u16, Vec<u8>) {
        // Partner calls reach the partner endpoints only through the relay, which names the
        // caller; the client API does not serve them.
        let (router, builder) = if uri.starts_with("/v2/partner/") {
            (
                &self.partner,
                Request::builder()
                    .uri(uri)
                    .extension(fate_api::PartnerCaller("9999".into())),
            )
        } else {
            (&self.app, Request::builder().uri(uri))
        };
        let req = match send {
            Req::Get => builder.method("GET").body(Body::empty()),
            Req::Json(b) => builder
                .method("POST")
                .header("content-type", "application/json")
                .body(Body::from(b.clone())),
            Req::Raw(ct, b) => builder
                .method("POST")
                .header("content-type", *ct)
                .body(Body::from(b.clone())),
            Req::Multipart(fields, files) => {
                let (body, content_type) = super::multipart_body(
                    "HOSTILEBOUNDARY",
                    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    files
                        .iter()
                        .map(|(k, b)| (k.as_str(), "f.csv", b.as_slice())),
                );
                builder
                    .method("POST")
                    .header("content-type", content_type)
                    .body(Body::from(body))
            }
        }
        .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 26)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    async fn call(&self, uri: &str, send: Req) -> Value {
        let (_, bytes) = self.send(uri, &send).await;
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        })
    }

    /// Jobs as (id, role, party, status) and tables as `namespace.name`.
    async fn store_state(&self) -> (BTreeSet<(String, String, String, String)>, BTreeSet<String>) {
        let store = self.scheduler.store();
        let jobs = store
            .jobs(&JobFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|j| {
                (
                    j.job_id,
                    j.role.to_string(),
                    j.party_id,
                    j.status.to_string(),
                )
            })
            .collect();
        let tables = store
            .tables()
            .await
            .unwrap()
            .into_iter()
            .map(|t| format!("{}.{}", t.namespace, t.name))
            .collect();
        (jobs, tables)
    }

    /// Every path under the test root except the node's own stores (tables, logs, SQLite),
    /// which jobs legitimately write.
    fn files(&self) -> BTreeSet<PathBuf> {
        let data = self.root.join("data");
        let skip = [
            data.join("tables"),
            data.join("logs"),
            data.join("fate_flow.sqlite"),
        ];
        let mut out = BTreeSet::new();
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if skip.iter().any(|s| {
                    p.starts_with(s) || p.to_string_lossy().starts_with(&*s.to_string_lossy())
                }) {
                    continue;
                }
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p.clone());
                }
                out.insert(p);
            }
        }
        out
    }

    fn uploads_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.join("data/uploads"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    async fn toy_succeeds(&self) {
        if !self.scheduler.hosted_party_ids().is_empty() {
            // A site node without its partners: it still answers.
            let v = self.call("/v2/site/info/query", Req::Get).await;
            assert_eq!(v["code"], 0, "the node still answers: {v}");
            return;
        }
        let v = self
            .call(
                "/v2/job/submit",
                json_body(json!({"dag_schema": toy_dag(json!(100), json!(2))})),
            )
            .await;
        assert_eq!(v["code"], 0, "the node still takes jobs: {v}");
        let job_id = v["job_id"].as_str().unwrap().to_string();
        let status = self
            .scheduler
            .wait(&job_id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(status, fate_types::JobStatus::Success, "toy job {job_id}");
    }

    /// Runs every case with its checks; returns how many ran. Every failing case is listed.
    async fn run(&self, cases: Vec<Case>, live_every: usize) -> usize {
        let n = cases.len();
        let mut failures = Vec::new();
        for (i, c) in cases.into_iter().enumerate() {
            if let Err(e) = self.check(&c).await {
                failures.push(format!("case {}: {e}", c.name));
            }
            if live_every > 0 && (i + 1) % live_every == 0 {
                self.toy_succeeds().await;
            }
        }
        self.toy_succeeds().await;
        assert!(
            failures.is_empty(),
            "{} of {n} hostile cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        n
    }

    async fn check(&self, c: &Case) -> Result<(), String> {
        macro_rules! ensure {
            ($cond:expr, $($fmt:tt)+) => {
                if !$cond {
                    return Err(format!($($fmt)+));
                }
            };
        }
        let (jobs0, tables0) = self.store_state().await;
        let files0 = self.files();
        let t = Instant::now();
        let (_, bytes) = self.send(&c.uri, &c.send).await;
        let took = t.elapsed();
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(400)])
            )
        })?;
        let (code_key, msg_key, want, needle) = match c.expect {
            Expect::Code(code, needle) => ("code", "message", code, needle),
            Expect::Retcode(code, needle) => ("retcode", "retmsg", code, needle),
        };
        ensure!(v[code_key] == want, "expected {code_key} {want}: {v}");
        let msg = v[msg_key].as_str().unwrap_or_default();
        ensure!(
            msg.contains(needle),
            "the error should name `{needle}`: {v}"
        );
        ensure!(
            !msg.contains("SECRET") && !msg.contains("root:x:0"),
            "the error quotes a file it may not read: {v}"
        );
        ensure!(took < Duration::from_secs(2), "took {took:?}");
        // Give a refused upload's file and a failed load job time to settle.
        let mut settled = false;
        for _ in 0..250 {
            let (jobs1, tables1) = self.store_state().await;
            let jobs_ok = if c.allows_failed_job {
                jobs0.is_subset(&jobs1) && jobs1.difference(&jobs0).all(|j| j.3 == "failed")
            } else {
                jobs1 == jobs0
            };
            if jobs_ok && tables1 == tables0 && self.uploads_left().is_empty() {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (jobs1, tables1) = self.store_state().await;
        ensure!(
            settled,
            "the store changed or an upload was left: jobs {jobs0:?} -> {jobs1:?}, tables {tables0:?} -> {tables1:?}, uploads {:?}",
            self.uploads_left()
        );
        let files1 = self.files();
        let new: Vec<_> = files1.difference(&files0).collect();
        ensure!(
            new.is_empty(),
            "files appeared outside the node's stores: {new:?}"
        );
        Ok(())
    }
}

pub(super) fn toy_dag(data_num: Value, partition: Value) -> Value {
    json!({"dag": {
        "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}],
        "tasks": {"toy_example_0": {"component_ref": "toy_example",
            "parameters": {"data_num": data_num, "partition": partition}}}
    }, "schema_version": "2.2.0"})
}

fn toy_with(params: Value) -> Value {
    let mut dag = toy_dag(json!(100), json!(2));
    if let Value::Object(p) = params {
        let target = &mut dag["dag"]["tasks"]["toy_example_0"]["parameters"];
        for (k, v) in p {
            target[k] = v;
        }
    }
    dag
}

fn task_dag(component: &str, parties: Value, params: Value) -> Value {
    json!({"dag": {
        "parties": parties,
        "tasks": {"t_0": {"component_ref": component, "parameters": params}}
    }, "schema_version": "2.2.0"})
}

fn gh() -> Value {
    json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}])
}

fn deep(open: &str, close: &str, n: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// Bodies no JSON endpoint may accept, with the word the error must name.
fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", b"".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[1,2]".to_vec()),
        ("number", b"42".to_vec()),
        ("truncated", b"{\"job_id\": ".to_vec()),
        ("not utf-8", vec![b'{', 0xff, 0xfe, b'}']),
        ("nested 100k", deep("[", "]", 100_000, "").into_bytes()),
        ("5 MiB", {
            let mut b = b"{\"x\": \"".to_vec();
            b.extend(std::iter::repeat_n(b'a', 5 << 20));
            b.extend_from_slice(b"\"}");
            b
        }),
    ]
}

/// Job ids that must never become a path.
fn bad_job_ids() -> Vec<&'static str> {
    vec![
        "../../x",
        "/tmp/fate-hostile-abs",
        "a/b",
        "..",
        ".",
        "-rf",
        "a b",
        "a\u{0}b",
        "ab\\cd",
        "x\ny",
        "ä",
        "999999999999999999999999999999999999999999999999999999999999999999999",
    ]
}

fn rest_cases(root: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    // 1. Malformed bodies at every JSON endpoint.
    let endpoints: [(&str, Expect); 12] = [
        ("/v2/job/submit", Expect::Code(1000, "dag_schema")),
        ("/v2/job/stop", Expect::Code(5001, "body")),
        ("/v2/job/rerun", Expect::Code(5001, "body")),
        ("/v2/job/clean", Expect::Code(5001, "body")),
        ("/v2/data/component/upload", Expect::Code(5001, "body")),
        ("/v2/table/delete", Expect::Code(5001, "body")),
        ("/v2/table/bind/path", Expect::Code(5001, "body")),
        ("/v2/job/log/download", Expect::Code(5001, "body")),
        ("/v2/model/export", Expect::Code(5001, "body")),
        ("/v2/partner/job/create", Expect::Code(5001, "body")),
        ("/v2/partner/job/stop", Expect::Code(5001, "body")),
        ("/v1/job/submit", Expect::Retcode(101, "")),
    ];
    for (uri, expect) in endpoints {
        for (what, body) in bad_bodies() {
            let expect = match (what, expect) {
                // Over the body limit: refused before any handler, in FATE's envelope.
                ("5 MiB", _) | ("not utf-8", _) => Expect::Code(5001, "body"),
                (_, e) => e,
            };
            // An empty body is "no DAG" for the DAG parser, "not JSON" for the others.
            cases.push(case(
                format!("{uri} with a {what} body"),
                uri,
                Req::Json(body),
                expect,
            ));
        }
    }
    // 2. Job ids that would become paths, at every endpoint that takes one.
    for id in bad_job_ids() {
        for uri in [
            "/v2/job/stop",
            "/v2/job/rerun",
            "/v2/job/clean",
            "/v2/job/log/download",
        ] {
            cases.push(case(
                format!("{uri} job_id {id:?}"),
                uri,
                json_body(json!({ "job_id": id })),
                Expect::Code(5001, "job_id"),
            ));
        }
        let q: String = url_escape(id);
        cases.push(case(
            format!("log query job_id {id:?}"),
            &format!("/v2/log/query?job_id={q}"),
            Req::Get,
            Expect::Code(5001, "job_id"),
        ));
    }
    // 3. Table names that are not names.
    let names: Vec<(&str, String)> = vec![
        ("namespace", "../x".into()),
        ("namespace", ".hidden".into()),
        ("name", "a/b".into()),
        ("name", "n".repeat(200)),
        ("name", "a\u{0}".into()),
    ];
    for (field, v) in names {
        let mut body = json!({"namespace": "experiment", "name": "t",
            "path": root.join("import/good.csv").to_string_lossy(),
            "file": root.join("import/good.csv").to_string_lossy()});
        body[field] = json!(v);
        for uri in ["/v2/table/bind/path", "/v2/data/component/upload"] {
            cases.push(case(
                format!("{uri} {field} {:?}", &v[..v.len().min(20)]),
                uri,
                json_body(body.clone()),
                Expect::Code(5001, field),
            ));
        }
    }
    // 4. Model export: names and a directory outside the data roots.
    let export = |field: &str, v: Value| {
        let mut body = json!({"model_id": "m", "model_version": "0", "role": "guest",
            "party_id": "9999", "path": root.join("import/models").to_string_lossy()});
        body[field] = v;
        body
    };
    for (what, body, field) in [
        (
            "model_id ../x",
            export("model_id", json!("../x")),
            "model_id",
        ),
        (
            "model_version a/b",
            export("model_version", json!("a/b")),
            "model_version",
        ),
        ("party_id ..", export("party_id", json!("..")), "party_id"),
        ("role nobody", export("role", json!("nobody")), "role"),
        (
            "path outside",
            export("path", json!(root.join("outside/models").to_string_lossy())),
            "path",
        ),
        ("path /etc", export("path", json!("/etc")), "path"),
        (
            "path climbing",
            export(
                "path",
                json!(format!("{}/import/../outside/x", root.display())),
            ),
            "path",
        ),
        ("path relative", export("path", json!("models")), "path"),
    ] {
        cases.push(case(
            format!("model export {what}"),
            "/v2/model/export",
            json_body(body),
            Expect::Code(5001, field),
        ));
    }
    // 5. Files a request may not make the node read.
    let secret = root.join("outside/secret.csv");
    let link = root.join("import/link.csv");
    let dir_link = root.join("import/outside_dir");
    let fifo = root.join("import/pipe.csv");
    let files: Vec<(&'static str, String, &'static str)> = vec![
        ("/etc/passwd", "/etc/passwd".into(), "data root"),
        (
            "/proc/self/environ",
            "/proc/self/environ".into(),
            "data root",
        ),
        ("/dev/zero", "/dev/zero".into(), "data root"),
        (
            "outside secret",
            secret.to_string_lossy().into(),
            "data root",
        ),
        (
            "symlink to outside",
            link.to_string_lossy().into(),
            "data root",
        ),
        (
            "through a symlinked dir",
            dir_link.join("secret.csv").to_string_lossy().into(),
            "data root",
        ),
        (
            "climbing ..",
            format!("{}/import/../outside/secret.csv", root.display()),
            "data root",
        ),
        ("a FIFO", fifo.to_string_lossy().into(), "regular file"),
        (
            "a directory",
            root.join("import").to_string_lossy().into(),
            "regular file",
        ),
        (
            "too large",
            root.join("import/big.csv").to_string_lossy().into(),
            "limit",
        ),
        ("relative", "import/good.csv".into(), ""),
    ];
    for (what, path, needle) in files {
        cases.push(case(
            format!("upload of {what}"),
            "/v2/data/component/upload",
            json_body(json!({"file": path, "namespace": "experiment", "name": "stolen"})),
            if what == "relative" {
                Expect::Code(5007, "file")
            } else {
                Expect::Code(5001, needle)
            },
        ));
        cases.push(case(
            format!("bind of {what}"),
            "/v2/table/bind/path",
            json_body(json!({"path": path, "namespace": "experiment", "name": "stolen"})),
            if what == "relative" {
                Expect::Code(8001, "path")
            } else {
                Expect::Code(5001, needle)
            },
        ));
    }
    for (what, path) in [
        (
            "missing",
            root.join("import/nope.csv").to_string_lossy().to_string(),
        ),
        ("NUL", "a\u{0}b".to_string()),
    ] {
        cases.push(case(
            format!("upload of a {what} file"),
            "/v2/data/component/upload",
            json_body(json!({"file": path, "namespace": "experiment", "name": "x"})),
            Expect::Code(5007, "file"),
        ));
    }
    // 6. Multipart uploads: the file is refused or its load fails, and nothing stays behind.
    let fields = |ns: &str| {
        vec![
            ("namespace".to_string(), ns.to_string()),
            ("name".to_string(), "mp".to_string()),
            ("head".to_string(), "true".to_string()),
        ]
    };
    cases.push(case(
        "multipart over the size limit",
        "/v2/data/component/upload/file",
        Req::Multipart(
            fields("experiment"),
            vec![("file".into(), vec![b'1'; (FILE_LIMIT + 10) as usize])],
        ),
        Expect::Code(5001, "limit"),
    ));
    cases.push(case(
        "multipart with a bad namespace",
        "/v2/data/component/upload/file",
        Req::Multipart(
            fields("../x"),
            vec![("file".into(), b"id,x\n1,2\n".to_vec())],
        ),
        Expect::Code(5001, "namespace"),
    ));
    cases.push(case(
        "multipart without a file",
        "/v2/data/component/upload/file",
        Req::Multipart(fields("experiment"), vec![]),
        Expect::Code(5001, "file"),
    ));
    cases.push(case(
        "multipart with two files",
        "/v2/data/component/upload/file",
        Req::Multipart(
            fields("experiment"),
            vec![
                ("file".into(), b"id,x\n1,2\n".to_vec()),
                ("file".into(), b"id,x\n1,2\n".to_vec()),
            ],
        ),
        Expect::Code(5001, "file"),
    ));
    cases.push(case(
        "multipart with a 100 KiB field",
        "/v2/data/component/upload/file",
        Req::Multipart(
            vec![("meta".into(), "x".repeat(100 << 10))],
            vec![("file".into(), b"id,x\n1,2\n".to_vec())],
        ),
        Expect::Code(5001, "meta"),
    ));
    cases.push(case(
        "multipart without a boundary",
        "/v2/data/component/upload/file",
        Req::Raw("multipart/form-data", b"--x\r\n".to_vec()),
        Expect::Code(5001, "body"),
    ));
    cases.push(case(
        "multipart that is not multipart",
        "/v2/data/component/upload/file",
        Req::Raw("text/plain", b"hello".to_vec()),
        Expect::Code(5001, "body"),
    ));
    let mut c = case(
        "multipart with a ragged CSV",
        "/v2/data/component/upload/file",
        Req::Multipart(
            fields("experiment"),
            vec![("file".into(), b"id,x\n1,2\n3\n".to_vec())],
        ),
        Expect::Code(0, "success"),
    );
    c.allows_failed_job = true;
    cases.push(c);
    // 7. Query strings.
    for (what, uri, expect) in [
        (
            "log query without a job",
            "/v2/log/query",
            Expect::Code(5001, "job_id"),
        ),
        (
            "task query bad status",
            "/v2/job/task/query?status=exploded",
            Expect::Code(5001, "status"),
        ),
        (
            "job list bad limit",
            "/v2/job/list/query?limit=abc",
            Expect::Code(5001, "limit"),
        ),
        (
            "output query bad role",
            "/v2/output/metric/query?job_id=1&role=king&party_id=1",
            Expect::Code(5001, "role"),
        ),
    ] {
        cases.push(case(what, uri, Req::Get, expect));
    }
    cases
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn csv_cases(root: &Path) -> Vec<Case> {
    let files: [(&'static str, &[u8], &'static str); 13] = [
        ("empty", b"", "empty"),
        ("ragged row", b"id,x0\n1,0.5\n2\n", "line 3"),
        ("non-numeric feature", b"id,x0\n1,0.5\n2,abc\n", "line 3"),
        ("duplicate id", b"id,x0\n1,0.5\n1,0.7\n", "duplicate"),
        ("empty id", b"id,x0\n,0.5\n", "empty id"),
        ("not UTF-8", b"id,x0\n1,\xff\xfe\n", "UTF-8"),
        ("NaN-ish text", b"id,x0\n1,1e999999x\n", "line 2"),
        ("unterminated quote", b"id,x0\n\"1,0.5\n", "line"),
        ("too wide row", b"id,x0\n1,2,3,4,5,6,7,8,9\n", "line 2"),
        ("missing label column", b"id,x0\n1,2\n", "label_name"),
        ("missing id column", b"a,b\n1,2\n", "match_id_name"),
        (
            "long cell",
            &[b'i', b'd', b',', b'x', b'\n', b'1', b','][..],
            "line 2",
        ),
        ("bad delimiter", b"id,x0\n1,2\n", "delimiter"),
    ];
    let mut cases = Vec::new();
    for (i, &(what, bytes, needle)) in files.iter().enumerate() {
        let path = root.join(format!("import/bad_{i}.csv"));
        let mut content = bytes.to_vec();
        if what == "long cell" {
            content.extend(std::iter::repeat_n(b'z', 100_000));
            content.push(b'\n');
        }
        std::fs::write(&path, content).unwrap();
        let mut body = json!({"path": path.to_string_lossy(), "namespace": "experiment", "name": format!("bad_{i}")});
        match what {
            "missing label column" => body["meta"] = json!({"label_name": "y"}),
            "missing id column" => body["meta"] = json!({"match_id_name": "id"}),
            "bad delimiter" => body["meta"] = json!({"delimiter": "::"}),
            _ => {}
        }
        let mut c = case(
            format!("csv {what}"),
            "/v2/table/bind/path",
            json_body(body),
            Expect::Code(5001, needle),
        );
        c.allows_failed_job = true;
        cases.push(c);
    }
    cases
}

fn dag_cases() -> Vec<Case> {
    let submit = |what: String, dag: Value, needle: &'static str| {
        case(
            what,
            "/v2/job/submit",
            json_body(json!({ "dag_schema": dag })),
            Expect::Code(1000, needle),
        )
    };
    let mut cases = vec![
        submit(
            "toy data_num 1e12".into(),
            toy_dag(json!(1_000_000_000_000u64), json!(4)),
            "data_num",
        ),
        submit(
            "toy data_num 1e30".into(),
            toy_dag(json!(1e30), json!(4)),
            "data_num",
        ),
        submit(
            "toy partition 1e9".into(),
            toy_dag(json!(100), json!(1_000_000_000u64)),
            "partition",
        ),
        submit(
            "toy unknown parameter".into(),
            toy_with(json!({"rows": 5})),
            "rows",
        ),
        submit(
            "secure_add data_num 1e12".into(),
            task_dag("secure_add_example", gh(), json!({"data_num": 1e12})),
            "data_num",
        ),
        submit(
            "upload partitions 1e6".into(),
            task_dag(
                "upload",
                json!([{"role": "local", "party_id": ["0"]}]),
                json!({"file": "x", "namespace": "a", "name": "b", "partitions": 1_000_000}),
            ),
            "partitions",
        ),
        submit(
            "lr epochs 1e9".into(),
            task_dag("coordinated_lr", gh(), json!({"epochs": 1_000_000_000u64})),
            "epochs",
        ),
        submit(
            "lr batch_size 1e12".into(),
            task_dag("coordinated_lr", gh(), json!({"batch_size": 1e12})),
            "batch_size",
        ),
        submit(
            "sbt num_trees 1e9".into(),
            task_dag(
                "hetero_secureboost",
                gh(),
                json!({"num_trees": 1_000_000_000u64}),
            ),
            "num_trees",
        ),
        submit(
            "sbt max_depth 1000".into(),
            task_dag("hetero_secureboost", gh(), json!({"max_depth": 1000})),
            "max_depth",
        ),
        submit(
            "sbt max_bin 1e9".into(),
            task_dag(
                "hetero_secureboost",
                gh(),
                json!({"max_bin": 1_000_000_000u64}),
            ),
            "max_bin",
        ),
        submit(
            "sbt num_class 1e9".into(),
            task_dag(
                "hetero_secureboost",
                gh(),
                json!({"num_class": 1_000_000_000u64}),
            ),
            "num_class",
        ),
        submit(
            "unknown component".into(),
            task_dag("rm_rf", gh(), json!({})),
            "component_ref",
        ),
        submit(
            "task name ../x".into(),
            json!({"dag": {"parties": gh(), "tasks": {"../x": {"component_ref": "toy_example",
                "parameters": {"data_num": 1, "partition": 1}}}}, "schema_version": "2.2.0"}),
            "../x",
        ),
        submit(
            "party id a/b".into(),
            json!({"dag": {"parties": [{"role": "guest", "party_id": ["a/b"]}], "tasks": {}},
                "schema_version": "2.2.0"}),
            "party_id",
        ),
        submit(
            "no tasks".into(),
            json!({"dag": {"parties": gh(), "tasks": {}}, "schema_version": "2.2.0"}),
            "dag.tasks",
        ),
        submit(
            "dependency cycle".into(),
            json!({"dag": {"parties": gh(), "tasks": {
                "a": {"component_ref": "toy_example", "dependent_tasks": ["b"], "parameters": {"data_num": 1, "partition": 1}},
                "b": {"component_ref": "toy_example", "dependent_tasks": ["a"], "parameters": {"data_num": 1, "partition": 1}}}},
                "schema_version": "2.2.0"}),
            "cycle",
        ),
    ];
    for (field, v) in [
        ("computing_partitions", json!(1_000_000)),
        ("cores", json!(1_000_000)),
        ("task_cores", json!(1_000_000)),
        ("auto_retries", json!(1_000_000)),
        ("model_id", json!("../../x")),
        ("model_version", json!("a/b")),
        ("sync_type", json!("push")),
    ] {
        let mut dag = toy_dag(json!(10), json!(1));
        dag["dag"]["conf"] = json!({ field: v });
        cases.push(submit(format!("conf.{field} {v}"), dag, field));
    }
    // Many tasks.
    let mut tasks = serde_json::Map::new();
    for i in 0..1001 {
        tasks.insert(
            format!("t{i}"),
            json!({"component_ref": "toy_example", "parameters": {"data_num": 1, "partition": 1}}),
        );
    }
    cases.push(submit(
        "1001 tasks".into(),
        json!({"dag": {"parties": gh(), "tasks": tasks}, "schema_version": "2.2.0"}),
        "dag.tasks",
    ));
    // Deep and hostile text, JSON and YAML, before any parser runs.
    let raw = |what: &str, text: String, needle: &'static str| {
        case(
            what,
            "/v2/job/submit",
            Req::Json(text.into_bytes()),
            Expect::Code(1000, needle),
        )
    };
    cases.push(raw(
        "JSON nested 100k",
        deep("{\"a\":", "}", 100_000, "1"),
        "nested",
    ));
    cases.push(raw(
        "JSON parameter nested 200",
        format!(
            "{{\"dag_schema\": {{\"dag\": {{\"parties\": [], \"tasks\": {{\"t\": {{\"component_ref\": \"toy_example\", \"parameters\": {{\"data_num\": {}}}}}}}}}}}}}",
            deep("[", "]", 200, "1")
        ),
        "nested",
    ));
    cases.push(raw(
        "YAML flow nested 100k",
        format!("dag: {}", deep("[", "]", 100_000, "")),
        "nested",
    ));
    cases.push(raw(
        "YAML flow maps nested 100k",
        format!("dag: {}", deep("{a: ", "}", 100_000, "1")),
        "nested",
    ));
    cases.push(raw(
        "YAML block nested 100",
        (0..100)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
            .collect::<String>(),
        "nested",
    ));
    cases.push(raw(
        "YAML dashes nested 100",
        format!("{}x\n", "- ".repeat(100)),
        "nested",
    ));
    cases.push(raw(
        "YAML billion laughs",
        {
            let mut y = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
            for (i, c) in "bcdefghi".chars().enumerate() {
                let prev = (b'a' + i as u8) as char;
                y.push_str(&format!(
                    "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
                ));
            }
            y.push_str("dag: *i\n");
            y
        },
        "dag_schema",
    ));
    cases.push(raw("YAML tab soup", "\t\t\t: : :\n".into(), "dag_schema"));
    cases.push(raw("YAML scalar", "just text".into(), "dag_schema"));
    cases.push(raw(
        "JSON duplicate keys",
        "{\"dag\": {}, \"dag\": {}}".into(),
        "dag_schema",
    ));
    // FATE 1.x DSL + conf.
    let v1 = |what: &str, body: Value, needle: &'static str| {
        case(
            what,
            "/v1/job/submit",
            json_body(body),
            Expect::Retcode(101, needle),
        )
    };
    let conf = |data_num: Value| {
        json!({"dsl_version": 2, "initiator": {"role": "guest", "party_id": 9999},
            "role": {"guest": [9999], "host": [10000]},
            "component_parameters": {"common": {"secure_add_example_0": {"data_num": data_num}}}})
    };
    let dsl = json!({"components": {"secure_add_example_0": {"module": "SecureAddExample"}}});
    cases.push(v1(
        "v1 data_num 1e12",
        json!({"dsl": dsl, "runtime_conf": conf(json!(1e12))}),
        "data_num",
    ));
    cases.push(v1("v1 missing conf", json!({ "dsl": dsl }), "runtime_conf"));
    cases.push(v1(
        "v1 unknown module",
        json!({"dsl": {"components": {"x": {"module": "Nope"}}}, "runtime_conf": conf(json!(1))}),
        "module",
    ));
    cases.push(v1(
        "v1 dsl_version 1",
        json!({"dsl": dsl, "runtime_conf": {"dsl_version": 1}}),
        "dsl_version",
    ));
    let mut many = serde_json::Map::new();
    for i in 0..1001 {
        many.insert(format!("c{i}"), json!({"module": "SecureAddExample"}));
    }
    cases.push(v1(
        "v1 1001 components",
        json!({"dsl": {"components": many}, "runtime_conf": conf(json!(1))}),
        "dsl.components",
    ));
    cases.push(v1(
        "v1 conf nested 100",
        json!({"dsl": dsl, "runtime_conf": {"x": serde_json::from_str::<Value>(&deep("[", "]", 100, "1")).unwrap()}}),
        "nested",
    ));
    cases
}

/// Calls a partner makes; `job` is a DAG the initiator 9999 would send.
fn partner_cases() -> Vec<Case> {
    let dag = toy_dag(json!(10), json!(1));
    let create = |what: String, body: Value, expect: Expect| {
        case(what, "/v2/partner/job/create", json_body(body), expect)
    };
    let mut cases = Vec::new();
    for id in bad_job_ids() {
        cases.push(create(
            format!("partner create job_id {id:?}"),
            json!({"job_id": id, "dag": dag}),
            Expect::Code(5001, "job_id"),
        ));
    }
    for uri in [
        "/v2/partner/job/stop",
        "/v2/partner/job/rerun",
        "/v2/partner/job/collect",
    ] {
        for id in ["../../x", "/abs"] {
            cases.push(case(
                format!("{uri} job_id {id}"),
                uri,
                json_body(json!({"job_id": id, "tasks": []})),
                Expect::Code(5001, "job_id"),
            ));
        }
    }
    let upload = json!({
        "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]},
                    {"role": "local", "party_id": ["0"]}],
        "tasks": {"upload_0": {"component_ref": "upload", "parties": [{"role": "local", "party_id": ["0"]}],
            "parameters": {"file": "/etc/passwd", "namespace": "a", "name": "b"}},
            "toy_example_0": {"component_ref": "toy_example", "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}],
            "parameters": {"data_num": 1, "partition": 1}}}
    });
    cases.push(create(
        "partner create with an upload of /etc/passwd".into(),
        json!({"job_id": "202601010000000000001", "dag": {"dag": upload, "schema_version": "2.2.0"}}),
        Expect::Code(1002, "never files"),
    ));
    cases.push(create(
        "partner create with toy data_num 1e12".into(),
        json!({"job_id": "202601010000000000002", "dag": toy_dag(json!(1e12), json!(1))}),
        Expect::Code(1000, "data_num"),
    ));
    cases.push(create(
        "partner create with an unreadable DAG".into(),
        json!({"job_id": "202601010000000000003", "dag": [1, 2]}),
        Expect::Code(1002, "DAG"),
    ));
    cases.push(create(
        "partner create without a DAG".into(),
        json!({"job_id": "202601010000000000004"}),
        Expect::Code(5001, "dag"),
    ));
    let mut wide = toy_dag(json!(10), json!(1));
    let ids: Vec<String> = (0..1001).map(|i| format!("h{i}")).collect();
    wide["dag"]["parties"][1]["party_id"] = json!(ids);
    cases.push(create(
        "partner create with 1001 parties".into(),
        json!({"job_id": "202601010000000000005", "dag": wide}),
        Expect::Code(1000, "dag.parties"),
    ));
    cases
}

fn fixtures(root: &Path) {
    let import = root.join("import");
    std::fs::create_dir_all(&import).unwrap();
    std::fs::write(import.join("good.csv"), "id,x0\n1,0.5\n2,0.7\n").unwrap();
    std::fs::write(
        import.join("big.csv"),
        vec![b'1'; (FILE_LIMIT + 1) as usize],
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join("outside/secret.csv"), import.join("link.csv")).unwrap();
    std::os::unix::fs::symlink(root.join("outside"), import.join("outside_dir")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(import.join("pipe.csv"))
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rest_csv_and_dag_inputs_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = hostile_node(dir.path(), None).await;
    fixtures(&node.root);
    let mut n = 0;
    n += node.run(rest_cases(&node.root), 40).await;
    n += node.run(csv_cases(&node.root), 0).await;
    n += node.run(dag_cases(), 20).await;
    println!("hostile cases (standalone): {n}");
    assert!(n >= 150, "{n} cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_partner_calls_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(["10000".to_string()], Arc::new(Unreachable));
    let node = hostile_node(dir.path(), Some(site)).await;
    fixtures(&node.root);
    let n = node.run(partner_cases(), 0).await;
    println!("hostile cases (partner): {n}");
}

/// Binds `csv` as `experiment.<name>` and returns the table's metadata.
async fn bind(node: &Hostile, name: &str, csv: &str) -> Value {
    let path = node.root.join(format!("import/{name}.csv"));
    std::fs::write(&path, csv).unwrap();
    let v = node
        .call(
            "/v2/table/bind/path",
            json_body(
                json!({"namespace": "experiment", "name": name, "path": path.to_string_lossy()}),
            ),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    table(node, name).await
}

async fn table(node: &Hostile, name: &str) -> Value {
    node.call(
        &format!("/v2/table/query?namespace=experiment&name={name}"),
        Req::Get,
    )
    .await
}

async fn submit_ok(node: &Hostile, dag: Value) -> String {
    let v = node.call("/v2/job/submit", json_body(dag)).await;
    assert_eq!(v["code"], 0, "{v}");
    let job_id = v["job_id"].as_str().unwrap().to_string();
    let status = node
        .scheduler
        .wait(&job_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(status, fate_types::JobStatus::Success, "job {job_id}");
    job_id
}

/// Finding 6: a reader leaves the metadata of the table it reads as it was, and
/// `/v2/job/clean` removes the output tables a job created, never the tables it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_leave_tables_alone_and_clean_removes_only_job_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let node = hostile_node(dir.path(), None).await;
    std::fs::create_dir_all(node.root.join("import")).unwrap();
    let rows: String = (0..30)
        .map(|i| format!("{i},{}\n", i as f64 / 10.0))
        .collect();
    let guest = bind(&node, "g", &format!("id,x0\n{rows}")).await;
    let host = bind(&node, "h", &format!("id,x1\n{rows}")).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let gh =
        json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]);
    let dag = json!({"dag_schema": {"dag": {"parties": gh, "tasks": {
        "reader_0": {"component_ref": "reader", "parameters": {}, "parties": gh, "stage": "default"},
        "psi_0": {"component_ref": "psi", "dependent_tasks": ["reader_0"], "parties": gh, "stage": "default",
            "inputs": {"data": {"input_data": {"task_output_artifact":
                {"producer_task": "reader_0", "output_artifact_key": "output_data", "parties": gh}}}}}},
        "party_tasks": {
            "g": {"parties": [{"role": "guest", "party_id": ["9999"]}],
                "tasks": {"reader_0": {"parameters": {"namespace": "experiment", "name": "g"}}}},
            "h": {"parties": [{"role": "host", "party_id": ["10000"]}],
                "tasks": {"reader_0": {"parameters": {"namespace": "experiment", "name": "h"}}}}}},
        "schema_version": "2.2.0"}});
    let job_id = submit_ok(&node, dag).await;
    for (name, before) in [("g", &guest), ("h", &host)] {
        let after = table(&node, name).await;
        for key in ["source", "create_time", "count", "path"] {
            assert_eq!(
                after["data"][key], before["data"][key],
                "reading {name} changed its {key}: {before} -> {after}"
            );
        }
    }
    let outputs: Vec<String> = node
        .scheduler
        .store()
        .tables()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.namespace == format!("output_data_{job_id}"))
        .map(|t| t.name)
        .collect();
    assert!(!outputs.is_empty(), "psi made output tables");
    let v = node
        .call("/v2/job/clean", json_body(json!({ "job_id": job_id })))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert!(
        v.get("data").is_none(),
        "FATE answers clean with no data: {v}"
    );
    let left: Vec<String> = node
        .scheduler
        .store()
        .tables()
        .await
        .unwrap()
        .into_iter()
        .map(|t| format!("{}.{}", t.namespace, t.name))
        .collect();
    assert_eq!(left, vec!["experiment.g", "experiment.h"], "inputs stay");
    assert!(
        !node
            .scheduler
            .computing()
            .exists(&format!("output_data_{job_id}"), &outputs[0])
            .unwrap(),
        "the output partitions are gone too"
    );
    let v = node
        .call(
            "/v2/job/clean",
            json_body(json!({"job_id": "202001010000000000000"})),
        )
        .await;
    assert_eq!(v["code"], 1001, "{v}");
}

/// A table's metadata records where it lives (FATE's `engine`/`address`); a reader on a node
/// whose storage is elsewhere (restarted on another `--storage`) fails naming both places,
/// instead of "not found" or another table's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_recorded_on_other_storage_is_an_error_naming_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let node = hostile_node(dir.path(), None).await;
    node.scheduler
        .store()
        .put_table(
            &fate_store::TableRecord {
                namespace: "experiment".into(),
                name: "elsewhere".into(),
                partitions: 4,
                count: 10,
                schema: json!({}),
                engine: "s3".into(),
                path: "experiment/elsewhere".into(),
                address: "s3://bucket/fate/experiment/elsewhere".into(),
                source: json!({}),
                create_time: 0,
            },
            false,
        )
        .await
        .unwrap();
    let local = json!([{"role": "guest", "party_id": ["9999"]}]);
    let dag = json!({"dag_schema": {"dag": {"parties": local, "tasks": {
        "reader_0": {"component_ref": "reader", "parties": local, "stage": "default",
            "parameters": {"namespace": "experiment", "name": "elsewhere"}}}},
        "schema_version": "2.2.0"}});
    let v = node.call("/v2/job/submit", json_body(dag)).await;
    assert_eq!(v["code"], 0, "{v}");
    let job_id = v["job_id"].as_str().unwrap().to_string();
    let status = node
        .scheduler
        .wait(&job_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(status, fate_types::JobStatus::Failed);
    let q = node
        .call(&format!("/v2/job/query?job_id={job_id}"), Req::Get)
        .await;
    let error = q["data"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("s3://bucket/fate/experiment/elsewhere") && error.contains("--storage"),
        "{q}"
    );
}

/// A download builds its tar in memory, so a table of more than `MAX_DOWNLOAD_ROWS` rows is
/// refused, naming the table, before it is collected (it was collected whatever its size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_of_a_table_over_the_row_bound_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = hostile_node(dir.path(), None).await;
    let n = fate_api::MAX_DOWNLOAD_ROWS + 1;
    let computing = node.scheduler.computing().clone();
    tokio::task::spawn_blocking(move || {
        let rows = (0..n).map(|i| {
            (
                format!("{i}"),
                fate_runtime::Row {
                    match_id: format!("{i}"),
                    label: None,
                    weight: None,
                    features: Vec::new(),
                },
            )
        });
        computing
            .parallelize(rows, 4)
            .save("experiment", "huge", false)
            .unwrap();
    })
    .await
    .unwrap();
    node.scheduler
        .store()
        .put_table(
            &fate_store::TableRecord {
                namespace: "experiment".into(),
                name: "huge".into(),
                partitions: 4,
                count: n as i64,
                schema: json!({}),
                engine: "standalone".into(),
                path: String::new(),
                address: "experiment/huge".into(),
                source: json!({}),
                create_time: 0,
            },
            false,
        )
        .await
        .unwrap();
    let v = node
        .call("/v2/data/download?namespace=experiment&name=huge", Req::Get)
        .await;
    assert_ne!(v["code"], 0, "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("experiment.huge") && msg.contains("more than a download holds"),
        "{v}"
    );
}

/// Finding 5: a multipart upload is streamed to disk and removed once its job has run,
/// whether the job succeeded or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_files_are_removed_after_their_job() {
    let dir = tempfile::tempdir().unwrap();
    let node = hostile_node(dir.path(), None).await;
    let fields = vec![
        ("namespace".to_string(), "experiment".to_string()),
        ("name".to_string(), "mp".to_string()),
    ];
    let v = node
        .call(
            "/v2/data/component/upload/file",
            Req::Multipart(fields, vec![("file".into(), b"id,x\n1,2\n3,4\n".to_vec())]),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let job_id = v["job_id"].as_str().unwrap();
    let status = node
        .scheduler
        .wait(job_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(status, fate_types::JobStatus::Success);
    assert_eq!(table(&node, "mp").await["data"]["count"], 2);
    for _ in 0..250 {
        if node.uploads_left().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the uploaded file stayed: {:?}", node.uploads_left());
}

/// Findings 3 and 4 at the planner: absurd sizes are refused before anything runs, and a
/// 100k-deep document is refused in well under a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sizes_and_deep_documents_are_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let node = hostile_node(dir.path(), None).await;
    for (dag, field) in [
        (toy_dag(json!(1_000_000_000_000u64), json!(4)), "data_num"),
        (toy_dag(json!(10), json!(100_000_000)), "partition"),
    ] {
        let dag: fate_dag::DagSchema = serde_json::from_value(dag).unwrap();
        let e = node.scheduler.plan(&dag).unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
    for text in [
        deep("[", "]", 100_000, ""),
        format!("dag: {}", deep("{a: ", "}", 100_000, "1")),
        deep("{\"a\":", "}", 100_000, "1"),
        (0..2000)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect(),
    ] {
        let t = Instant::now();
        let e = fate_dag::parse_dag(&text).unwrap_err();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?} for {}",
            t.elapsed(),
            e
        );
        assert!(e.to_string().contains("nested"), "{e}");
    }
}
