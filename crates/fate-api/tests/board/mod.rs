//! The board's login and sessions, and how a session cookie passes the REST API's
//! authentication: a live session is a `client` (never `super_client`), a forged or expired
//! one is 401, a state-changing request needs the session's CSRF token and the node's own
//! Origin, and pages other than the login page need a session.

use super::hostile::hostile_node;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let req = b
        .body(
            body.map(|v| Body::from(v.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A node with the board (admin / pw) and `client_auth` on or off.
async fn board_node(dir: &std::path::Path, client_auth: bool) -> (Router, Arc<fate_api::Board>) {
    let node = hostile_node(dir, None).await;
    let board = Arc::new(fate_api::Board::new(fate_api::BoardConfig {
        user: "admin".into(),
        password: "pw".into(),
        session_minutes: 5,
    }));
    let state = fate_api::ApiState {
        scheduler: node.scheduler.clone(),
        upload_dir: dir.join("data/uploads"),
        address: "127.0.0.1:9380".into(),
        auth: client_auth
            .then(|| Arc::new(fate_api::ClientAuth::new(node.scheduler.store().clone()))),
        board: Some(board.clone()),
        serving: Default::default(),
    };
    (fate_api::router(state), board)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_login_and_a_login_sets_a_strict_http_only_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = board_node(dir.path(), false).await;
    let html = [("accept", "text/html,application/xhtml+xml")];

    let r = send(&app, "GET", "/", &html, None).await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers["location"], "/board/");
    let r = send(&app, "GET", "/board/", &html, None).await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers["location"], "/board/login");
    // The login page and what it needs are public; nothing else is.
    let r = send(&app, "GET", "/board/login", &html, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("<form id=\"login\""), "{}", r.body);
    for public in ["/board/style.css", "/board/login.js"] {
        assert_eq!(
            send(&app, "GET", public, &[], None).await.status,
            StatusCode::OK,
            "{public}"
        );
    }
    for private in [
        "/board/app.js",
        "/board/charts.js",
        "/board/api/session",
        "/board/",
    ] {
        let r = send(&app, "GET", private, &[], None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{private}: {}", r.body);
        assert!(
            r.json()["message"].as_str().unwrap().contains("log in"),
            "{}",
            r.body
        );
    }

    // Wrong logins: 401 and no cookie.
    for (user, password) in [("admin", "nope"), ("root", "pw"), ("admin", "")] {
        let r = send(
            &app,
            "POST",
            "/board/login",
            &[],
            Some(json!({"user": user, "password": password})),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}/{password}");
        assert!(r.headers.get("set-cookie").is_none());
    }
    let r = send(
        &app,
        "POST",
        "/board/login",
        &[],
        Some(json!({"user": "admin", "password": "pw"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let id = cookie.strip_prefix("fate_board_session=").unwrap();
    assert_eq!(id.len(), 64, "256-bit id in hex: {id}");
    let with = [("cookie", cookie.as_str())];
    let r = send(&app, "GET", "/board/api/session", &with, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["data"]["user"], "admin");
    let r = send(&app, "GET", "/board/app.js", &with, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let r = send(&app, "GET", "/board/", &with, None).await;
    assert!(r.body.contains("app.js"), "{}", r.body);
    // A form login works too (a browser without scripts).
    let req = Request::builder()
        .method("POST")
        .uri("/board/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("user=admin&password=pw"))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_is_a_client_and_forged_expired_or_cross_site_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Client authentication on: unsigned requests without a cookie get FATE's 5001.
    let (app, board) = board_node(dir.path(), true).await;
    let q = "/v2/job/list/query";
    assert_eq!(send(&app, "GET", q, &[], None).await.json()["code"], 5001);

    let id = board.login("admin", "pw", fate_store::now_ms()).unwrap();
    let cookie = format!("fate_board_session={id}");
    let r = send(&app, "GET", q, &[("cookie", &cookie)], None).await;
    assert_eq!(r.json()["code"], 0, "{}", r.body);
    assert_eq!(r.json()["data"]["count"], 0);

    // Forged and expired sessions: 401, also on unknown paths.
    let forged = format!("fate_board_session={}", "ab".repeat(32));
    for path in [q, "/v2/nothing/here", "/board/api/session"] {
        let r = send(&app, "GET", path, &[("cookie", &forged)], None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
    }
    let old = board
        .login("admin", "pw", fate_store::now_ms() - 6 * 60_000)
        .unwrap();
    let expired = format!("fate_board_session={old}");
    let r = send(&app, "GET", q, &[("cookie", &expired)], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("expired"), "{}", r.body);

    // Never super_client: app and permission management are refused, even for reading.
    for (method, path) in [
        ("GET", "/v2/app/client/query"),
        ("POST", "/v2/app/client/create"),
        ("GET", "/v2/permission/role/query"),
    ] {
        let r = send(
            &app,
            method,
            path,
            &[("cookie", &cookie)],
            Some(json!({"app_name": "x"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
        assert_eq!(r.json()["code"], 5004, "{}", r.body);
    }

    // State-changing requests by cookie need the CSRF token and, with an Origin, our own.
    let session = send(
        &app,
        "GET",
        "/board/api/session",
        &[("cookie", &cookie)],
        None,
    )
    .await
    .json();
    let csrf = session["data"]["csrf"].as_str().unwrap().to_string();
    let stop = json!({"job_id": "202601010000000000042"});
    let host = ("host", "127.0.0.1:9380");
    for headers in [
        vec![("cookie", cookie.as_str()), host],
        vec![("cookie", cookie.as_str()), host, ("x-fate-csrf", "0000")],
        vec![
            ("cookie", cookie.as_str()),
            host,
            ("x-fate-csrf", csrf.as_str()),
            ("origin", "http://evil.example"),
        ],
    ] {
        let r = send(&app, "POST", "/v2/job/stop", &headers, Some(stop.clone())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}: {}", r.body);
    }
    let r = send(
        &app,
        "POST",
        "/v2/job/stop",
        &[
            ("cookie", &cookie),
            host,
            ("x-fate-csrf", &csrf),
            ("origin", "http://127.0.0.1:9380"),
        ],
        Some(stop),
    )
    .await;
    // Past authentication: the scheduler's answer (no such job).
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["code"], 1001, "{}", r.body);

    // Logout ends the session.
    let r = send(
        &app,
        "POST",
        "/board/logout",
        &[("cookie", &cookie), ("x-fate-csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(&app, "GET", q, &[("cookie", &cookie)], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_authentication_fates_client_works_as_before_but_the_board_needs_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = board_node(dir.path(), false).await;
    let r = send(&app, "GET", "/v2/job/list/query", &[], None).await;
    assert_eq!(r.json()["code"], 0, "{}", r.body);
    let r = send(&app, "GET", "/board/api/session", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let forged = format!("fate_board_session={}", "cd".repeat(32));
    let r = send(
        &app,
        "GET",
        "/v2/job/list/query",
        &[("cookie", &forged)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

/// Guessing the board's password: after five wrong logins in a row the next attempt, even with
/// the right password, is 429 with Retry-After and sets no cookie; the wait then lets it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_logins_in_a_row_are_slowed_down() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = board_node(dir.path(), false).await;
    let login = |password: &'static str| {
        let app = app.clone();
        async move {
            send(
                &app,
                "POST",
                "/board/login",
                &[],
                Some(json!({"user": "admin", "password": password})),
            )
            .await
        }
    };
    for _ in 0..fate_api::board::FREE_LOGIN_FAILURES {
        assert_eq!(login("guess").await.status, StatusCode::UNAUTHORIZED);
    }
    let r = login("pw").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    assert!(r.headers.get("set-cookie").is_none());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("too many failed logins"),
        "{}",
        r.body
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = login("pw").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.headers.get("set-cookie").is_some());
}
