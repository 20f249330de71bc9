//! Client authentication (FATE-Flow 2.x app id + token signatures), app and permission
//! management, site permissions, and partner calls that only the relay can make.

use super::hostile::{Unreachable, hostile_node, toy_dag};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use fate_api::auth::{MAX_CLOCK_SKEW_MS, sign};
use fate_scheduler::Site;
use fate_store::{AppRecord, JobFilter, MetaStore};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// How a test request is signed.
#[derive(Clone)]
enum Sig {
    None,
    /// app id, token, timestamp offset (ms), nonce
    With(String, String, i64, &'static str),
    /// Headers as given, e.g. a forged signature.
    Raw(Vec<(&'static str, String)>),
}

fn signed(app: &AppRecord) -> Sig {
    Sig::With(app.app_id.clone(), app.app_token.clone(), 0, "1234")
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>, sig: &Sig) -> Value {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    match sig {
        Sig::None => {}
        Sig::With(id, token, offset, nonce) => {
            let ts = (fate_store::now_ms() + offset).to_string();
            b = b
                .header("appId", id)
                .header("userName", "alice")
                .header("Nonce", *nonce)
                .header("Timestamp", &ts)
                .header("Signature", sign(id, token, "alice", nonce, &ts));
        }
        Sig::Raw(headers) => {
            for (k, v) in headers {
                b = b.header(*k, v);
            }
        }
    }
    let req = b
        .body(
            body.map(|v| Body::from(v.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

async fn admin(store: &MetaStore) -> AppRecord {
    let app = fate_api::auth::new_app("admin", fate_store::now_ms());
    store.create_app(&app).await.unwrap();
    store.grant_role(&app.app_id, "client").await.unwrap();
    store.grant_role(&app.app_id, "super_client").await.unwrap();
    app
}

fn assert_code(v: &Value, code: i64, needle: &str) {
    assert_eq!(v["code"], code, "{v}");
    let m = v["message"].as_str().unwrap_or("");
    assert!(m.contains(needle), "message {m:?} lacks {needle:?}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_authentication_refuses_unsigned_and_wrongly_signed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let node = hostile_node(dir.path(), None).await;
    let store = node.scheduler.store().clone();
    let admin = admin(&store).await;
    let state = fate_api::ApiState {
        scheduler: node.scheduler.clone(),
        upload_dir: dir.path().join("data/uploads"),
        address: "0.0.0.0:9380".into(),
        auth: Some(Arc::new(fate_api::ClientAuth::new(store.clone()))),
        board: None,
        serving: Default::default(),
    };
    let app = fate_api::router(state);
    let q = "/v2/job/list/query";

    // Unsigned, and each header missing: 5001 naming the header.
    assert_code(&call(&app, "GET", q, None, &Sig::None).await, 5001, "appId");
    let full = |skip: &str| -> Sig {
        let ts = fate_store::now_ms().to_string();
        let all = vec![
            ("appId", admin.app_id.clone()),
            ("userName", "alice".to_string()),
            ("Nonce", "1234".to_string()),
            ("Timestamp", ts.clone()),
            (
                "Signature",
                sign(&admin.app_id, &admin.app_token, "alice", "1234", &ts),
            ),
        ];
        Sig::Raw(all.into_iter().filter(|(k, _)| *k != skip).collect())
    };
    for h in ["Timestamp", "Nonce", "Signature"] {
        assert_code(&call(&app, "GET", q, None, &full(h)).await, 5001, h);
    }
    // Unknown endpoints and uploads are refused before anything is read or written.
    assert_code(
        &call(&app, "GET", "/v2/nothing/here", None, &Sig::None).await,
        5001,
        "appId",
    );
    let upload = json!({"file": "/etc/passwd", "head": true, "partitions": 1,
        "namespace": "a", "name": "b", "meta": {}});
    assert_code(
        &call(
            &app,
            "POST",
            "/v2/data/component/upload",
            Some(upload),
            &Sig::None,
        )
        .await,
        5001,
        "appId",
    );
    // Expired and future timestamps: 5000.
    let old = Sig::With(
        admin.app_id.clone(),
        admin.app_token.clone(),
        -(MAX_CLOCK_SKEW_MS + 5_000),
        "1111",
    );
    assert_code(&call(&app, "GET", q, None, &old).await, 5000, "expired");
    let ahead = Sig::With(
        admin.app_id.clone(),
        admin.app_token.clone(),
        MAX_CLOCK_SKEW_MS + 5_000,
        "2222",
    );
    assert_code(&call(&app, "GET", q, None, &ahead).await, 5000, "ahead");
    // Unknown app: 5002; wrong token: 5003; a 3-digit nonce: 5001.
    let stranger = Sig::With("nobody".into(), "x".into(), 0, "3333");
    assert_code(&call(&app, "GET", q, None, &stranger).await, 5002, "nobody");
    let wrong = Sig::With(admin.app_id.clone(), "not the token".into(), 0, "4444");
    assert_code(&call(&app, "GET", q, None, &wrong).await, 5003, "Signature");
    let short = Sig::With(admin.app_id.clone(), admin.app_token.clone(), 0, "123");
    assert_code(&call(&app, "GET", q, None, &short).await, 5001, "Nonce");

    // Correctly signed: success; the same signed request again is a replay.
    let ts = fate_store::now_ms().to_string();
    let once = Sig::Raw(vec![
        ("appId", admin.app_id.clone()),
        ("userName", "alice".into()),
        ("Nonce", "5555".into()),
        ("Timestamp", ts.clone()),
        (
            "Signature",
            sign(&admin.app_id, &admin.app_token, "alice", "5555", &ts),
        ),
    ]);
    assert_eq!(call(&app, "GET", q, None, &once).await["code"], 0);
    assert_code(&call(&app, "GET", q, None, &once).await, 5003, "replayed");

    // Nothing was changed by the refused requests.
    assert!(store.jobs(&JobFilter::default()).await.unwrap().is_empty());
    assert!(store.table("a", "b").await.unwrap().is_none());

    // The admin creates a client app; the client may use the API but not manage apps.
    let created = call(
        &app,
        "POST",
        "/v2/app/client/create",
        Some(json!({"app_name": "bank_a"})),
        &signed(&admin),
    )
    .await;
    assert_eq!(created["code"], 0, "{created}");
    let client = store
        .app(created["data"]["app_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created["data"]["app_token"], client.app_token.as_str());
    assert_eq!(
        call(&app, "GET", q, None, &signed(&client)).await["code"],
        0
    );
    let escalate = call(
        &app,
        "POST",
        "/v2/permission/grant",
        Some(json!({"app_id": client.app_id, "role": "super_client"})),
        &Sig::With(client.app_id.clone(), client.app_token.clone(), 0, "6666"),
    )
    .await;
    assert_code(&escalate, 5004, "super_client");
    assert_eq!(store.roles(&client.app_id).await.unwrap(), ["client"]);
    let roles = call(
        &app,
        "GET",
        &format!("/v2/permission/query?app_id={}", client.app_id),
        None,
        &signed(&admin),
    )
    .await;
    assert_eq!(roles["data"]["roles"], json!(["client"]), "{roles}");
    let bad_role = call(
        &app,
        "POST",
        "/v2/permission/grant",
        Some(json!({"app_id": client.app_id, "role": "root"})),
        &Sig::With(admin.app_id.clone(), admin.app_token.clone(), 0, "7777"),
    )
    .await;
    assert_code(&bad_role, 5001, "role");
    // Revoking `client` shuts the app out (5004); deleting it makes it unknown (5002).
    let revoke = call(
        &app,
        "POST",
        "/v2/permission/delete",
        Some(json!({"app_id": client.app_id, "role": "client"})),
        &Sig::With(admin.app_id.clone(), admin.app_token.clone(), 0, "8888"),
    )
    .await;
    assert_eq!(revoke["code"], 0, "{revoke}");
    assert_code(
        &call(
            &app,
            "GET",
            q,
            None,
            &Sig::With(client.app_id.clone(), client.app_token.clone(), 0, "9999"),
        )
        .await,
        5004,
        "may not call",
    );
    let deleted = call(
        &app,
        "POST",
        "/v2/app/client/delete",
        Some(json!({"app_id": client.app_id})),
        &Sig::With(admin.app_id.clone(), admin.app_token.clone(), 0, "1010"),
    )
    .await;
    assert_eq!(deleted["code"], 0, "{deleted}");
    assert_code(
        &call(
            &app,
            "GET",
            q,
            None,
            &Sig::With(client.app_id.clone(), client.app_token.clone(), 0, "2020"),
        )
        .await,
        5002,
        &client.app_id,
    );
}

/// Before: `/v2/partner/*` was served on the client API and trusted `x-fate-src-party`, so any
/// local process could stop or create jobs in another party's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_calls_are_not_served_on_the_client_api_whatever_header_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(["10000".to_string()], Arc::new(Unreachable));
    let node = hostile_node(dir.path(), Some(site)).await;
    let state = fate_api::ApiState {
        scheduler: node.scheduler.clone(),
        upload_dir: dir.path().join("data/uploads"),
        address: "127.0.0.1:9380".into(),
        auth: None,
        board: None,
        serving: Default::default(),
    };
    let app = fate_api::router(state.clone());
    let dag = toy_dag(json!(10), json!(1));
    for (path, body) in [
        (
            "/v2/partner/job/create",
            json!({"job_id": "202601010000000000042", "dag": dag}),
        ),
        (
            "/v2/partner/job/stop",
            json!({"job_id": "202601010000000000042"}),
        ),
        (
            "/v2/partner/job/collect",
            json!({"job_id": "202601010000000000042"}),
        ),
    ] {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("x-fate-src-party", "9999")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert!(
        node.scheduler
            .store()
            .jobs(&JobFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    // The partner endpoints, without the caller the relay names, refuse too.
    let partner = fate_api::partner_router(state);
    let v = call(
        &partner,
        "POST",
        "/v2/partner/job/collect",
        Some(json!({"job_id": "202601010000000000042"})),
        &Sig::None,
    )
    .await;
    assert_code(&v, 5004, "site router");

    // Through the relay, the caller is the party the routers named: only the job's parties
    // may poll or stop it, only its initiator may create it.
    let job = "202601010000000000043";
    let v = partner_create(&partner, "9999", job, dag.clone()).await;
    assert_eq!(v["code"], 0, "{v}");
    let as_party = |path: &'static str, from: &'static str| {
        let partner = partner.clone();
        async move {
            let req = Request::builder()
                .method("POST")
                .uri(path)
                .header("content-type", "application/json")
                .extension(fate_api::PartnerCaller(from.into()))
                .body(Body::from(json!({"job_id": job}).to_string()))
                .unwrap();
            let resp = partner.oneshot(req).await.unwrap();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    assert_eq!(as_party("/v2/partner/job/collect", "9999").await["code"], 0);
    let refused = as_party("/v2/partner/job/collect", "8888").await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or("")
            .contains("party 8888 is not a party of job"),
        "{refused}"
    );
    assert_ne!(as_party("/v2/partner/job/stop", "7777").await["code"], 0);
    // Serving: a partner that is not a model's guest cannot tell an unknown model from one it
    // may not load, nor learn which parties the node hosts: one answer for every case.
    let serving = |path: &'static str, body: Value| {
        let partner = partner.clone();
        async move {
            let req = Request::builder()
                .method("POST")
                .uri(path)
                .header("content-type", "application/json")
                .extension(fate_api::PartnerCaller("8888".into()))
                .body(Body::from(body.to_string()))
                .unwrap();
            let resp = partner.oneshot(req).await.unwrap();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let load = fate_api::serving::paths::LOAD;
    let unknown_model = serving(
        load,
        json!({"model_id": "no_such_model", "model_version": "1", "party_id": "10000"}),
    )
    .await;
    let unknown_party = serving(
        load,
        json!({"model_id": "no_such_model", "model_version": "1", "party_id": "4242"}),
    )
    .await;
    for v in [&unknown_model, &unknown_party] {
        let message = v["message"].as_str().unwrap_or("");
        assert!(
            message.contains("that party 8888 may load") && !message.contains("hosts"),
            "{v}"
        );
    }
    assert_eq!(unknown_model["code"], unknown_party["code"]);
    let inference = serving(
        fate_api::serving::paths::INFERENCE,
        json!({"model_id": "m", "model_version": "1", "party_id": "10000",
               "items": [{"id": "1"}]}),
    )
    .await;
    assert!(
        inference["message"]
            .as_str()
            .unwrap_or("")
            .contains("is not loaded at this host for party 10000 and guest 8888"),
        "{inference}"
    );
    let forged = partner_create(&partner, "8888", "202601010000000000044", dag).await;
    assert!(
        forged["message"]
            .as_str()
            .unwrap_or("")
            .contains("party 8888 may not create job"),
        "{forged}"
    );
}

async fn partner_create(partner: &Router, from: &str, job_id: &str, dag: Value) -> Value {
    let req = Request::builder()
        .method("POST")
        .uri("/v2/partner/job/create")
        .header("content-type", "application/json")
        .extension(fate_api::PartnerCaller(from.into()))
        .body(Body::from(
            json!({"job_id": job_id, "dag": dag}).to_string(),
        ))
        .unwrap();
    let resp = partner.clone().oneshot(req).await.unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_permissions_decide_which_components_and_tables_a_partner_may_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(["10000".to_string()], Arc::new(Unreachable));
    site.permission = true;
    let node = hostile_node(dir.path(), Some(site)).await;
    let store = node.scheduler.store().clone();
    let admin = admin(&store).await;
    let state = fate_api::ApiState {
        scheduler: node.scheduler.clone(),
        upload_dir: dir.path().join("data/uploads"),
        address: "127.0.0.1:9380".into(),
        auth: Some(Arc::new(fate_api::ClientAuth::new(store.clone()))),
        board: None,
        serving: Default::default(),
    };
    let app = fate_api::router(state.clone());
    let partner = fate_api::partner_router(state);
    let toy = toy_dag(json!(10), json!(1));

    // Nothing granted: refused with 5005 naming the component; no job row.
    let v = partner_create(&partner, "9999", "202601010000000000101", toy.clone()).await;
    assert_code(&v, 5005, "toy_example");
    assert!(store.jobs(&JobFilter::default()).await.unwrap().is_empty());

    // A reader of a table that is not granted: refused naming the table.
    let reader = json!({"dag": {
        "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}],
        "tasks": {"reader_0": {"component_ref": "reader",
            "parties": [{"role": "host", "party_id": ["10000"]}],
            "parameters": {"namespace": "experiment", "name": "secret_table"}}}
    }, "schema_version": "2.2.0"});
    let grant = |body: Value, nonce: &'static str| {
        let app = app.clone();
        let admin = admin.clone();
        async move {
            call(
                &app,
                "POST",
                "/v2/permission/resource/grant",
                Some(body),
                &Sig::With(admin.app_id, admin.app_token, 0, nonce),
            )
            .await
        }
    };
    let g = grant(
        json!({"party_id": "9999", "component": "reader,toy_example"}),
        "1001",
    )
    .await;
    assert_eq!(g["code"], 0, "{g}");
    assert_eq!(
        g["data"]["component"],
        json!(["reader", "toy_example"]),
        "{g}"
    );
    let v = partner_create(&partner, "9999", "202601010000000000102", reader.clone()).await;
    assert_code(&v, 5005, "experiment.secret_table");
    // Another party's grants are not 9999's.
    let g = grant(
        json!({"party_id": "8888", "dataset": [{"namespace": "experiment", "name": "secret_table"}]}),
        "1002",
    )
    .await;
    assert_eq!(g["code"], 0, "{g}");
    let v = partner_create(&partner, "9999", "202601010000000000103", reader.clone()).await;
    assert_code(&v, 5005, "experiment.secret_table");
    assert!(store.jobs(&JobFilter::default()).await.unwrap().is_empty());

    // Granted: the toy is accepted (it then fails, its partner being unreachable).
    let v = partner_create(&partner, "9999", "202601010000000000104", toy).await;
    assert_eq!(v["code"], 0, "{v}");
    let g = grant(
        json!({"party_id": "9999", "dataset": {"namespace": "experiment", "name": "secret_table"}}),
        "1003",
    )
    .await;
    assert_eq!(
        g["data"]["dataset"],
        json!([{"namespace": "experiment", "name": "secret_table"}]),
        "{g}"
    );
    let v = partner_create(&partner, "9999", "202601010000000000105", reader).await;
    assert_eq!(v["code"], 0, "{v}");
    let q = call(
        &app,
        "GET",
        "/v2/permission/resource/query?party_id=9999",
        None,
        &Sig::With(admin.app_id.clone(), admin.app_token.clone(), 0, "1004"),
    )
    .await;
    assert_eq!(
        q["data"]["component"],
        json!(["reader", "toy_example"]),
        "{q}"
    );
    // A grant naming an unsafe value changes nothing.
    let bad = grant(
        json!({"party_id": "../9999", "component": "toy_example"}),
        "1005",
    )
    .await;
    assert_code(&bad, 5001, "party_id");
    assert!(store.site_permissions("../9999").await.unwrap().is_empty());
}
