//! The board: FATE-Board-like pages (fate-spec §7) served by the node on the API's port.
//!
//! Front end: plain HTML, CSS and JavaScript modules under `crates/fate-api/board/`, embedded
//! with `include_str!`. Charts (curves, bars, the DAG) are SVG drawn by our own small code.
//! There is no npm build step, so `cargo build` needs no Node and a user installs nothing but
//! the binary; the pages read the same FATE-Flow output API (`/v2/output/metric/query`,
//! `/v2/output/model/query`, `/v2/job/list/query`, ...) as FATE's client.
//!
//! Login: one board user and password from the node's configuration. A login makes a session
//! (a random 256-bit id in an `HttpOnly`, `SameSite=Strict` cookie) held in a bounded table
//! with an expiry. A request with a session cookie is authenticated by the same middleware as
//! the REST API (`auth::gate`) as a `client`, never `super_client`; a state-changing request
//! so authenticated must also carry the session's CSRF token (`X-Fate-Csrf`) and, if it has
//! an `Origin`, the node's own. Pages and assets other than the login page need a session:
//! without one an HTML request is sent to the login page and anything else gets 401.

use crate::envelope::Envelope;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use fate_types::RetCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "fate_board_session";
/// The header a cookie-authenticated state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-fate-csrf";
/// Most sessions held at once; a login beyond it ends the session closest to expiry.
pub const MAX_SESSIONS: usize = 1024;
/// Largest login body.
const LOGIN_BODY_LIMIT: usize = 4096;

/// The board's login (node.yaml `board:`).
#[derive(Clone)]
pub struct BoardConfig {
    pub user: String,
    pub password: String,
    /// How long a session lasts after login.
    pub session_minutes: u64,
}

impl std::fmt::Debug for BoardConfig {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BoardConfig {{ user: {:?}, session_minutes: {} }}",
            self.user, self.session_minutes
        )
    }
}

/// A live session.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    pub expires_ms: i64,
}

/// The board's login and its sessions.
pub struct Board {
    config: BoardConfig,
    sessions: Mutex<HashMap<String, Session>>,
    /// Failed logins in a row and the time before which no login is tried.
    failures: Mutex<(u32, i64)>,
}

/// Failed logins in a row allowed before the board makes the next one wait.
pub const FREE_LOGIN_FAILURES: u32 = 5;
/// Longest wait between two login attempts, in ms.
pub const MAX_LOGIN_WAIT_MS: i64 = 60_000;

fn random_hex() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random password for a node with none configured (24 characters from a 56-letter
/// alphabet without look-alikes, about 139 bits).
pub fn random_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    #[error("user or password: wrong user name or password")]
    Wrong,
    /// Too many failures in a row: the node takes no login before `retry_after_s`.
    #[error("too many failed logins in a row: try again in {retry_after_s} s")]
    Throttled { retry_after_s: i64 },
}

impl Board {
    pub fn new(config: BoardConfig) -> Self {
        Board {
            config,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new((0, 0)),
        }
    }

    pub fn config(&self) -> &BoardConfig {
        &self.config
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks `user` and `password` (in constant time) and makes a session; returns its id.
    /// After [`FREE_LOGIN_FAILURES`] failures in a row, each further attempt must wait (1 s,
    /// doubling, at most [`MAX_LOGIN_WAIT_MS`]) whoever makes it, so a password cannot be
    /// guessed at network speed; a success resets the count.
    pub fn login(&self, user: &str, password: &str, now_ms: i64) -> Result<String, LoginError> {
        {
            let mut f = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now_ms < f.1 {
                return Err(LoginError::Throttled {
                    retry_after_s: (f.1 - now_ms + 999) / 1000,
                });
            }
            let user_ok = user.as_bytes().ct_eq(self.config.user.as_bytes());
            let password_ok = password.as_bytes().ct_eq(self.config.password.as_bytes());
            if !bool::from(user_ok & password_ok) {
                f.0 = f.0.saturating_add(1);
                if f.0 >= FREE_LOGIN_FAILURES {
                    let doublings = (f.0 - FREE_LOGIN_FAILURES).min(16);
                    f.1 = now_ms.saturating_add((1000i64 << doublings).min(MAX_LOGIN_WAIT_MS));
                }
                return Err(LoginError::Wrong);
            }
            *f = (0, 0);
        }
        let id = random_hex();
        let session = Session {
            user: user.to_string(),
            csrf: random_hex(),
            expires_ms: now_ms
                .saturating_add((self.config.session_minutes.max(1) as i64).saturating_mul(60_000)),
        };
        let mut table = self.table();
        table.retain(|_, s| s.expires_ms > now_ms);
        while table.len() >= MAX_SESSIONS {
            let Some(oldest) = table
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            table.remove(&oldest);
        }
        table.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session of `id` at `now_ms`; an expired one is removed.
    pub fn session(&self, id: &str, now_ms: i64) -> Option<Session> {
        let mut table = self.table();
        match table.get(id) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                table.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id`.
    pub fn logout(&self, id: &str) {
        self.table().remove(id);
    }

    /// Sessions held (for tests of the bound).
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether a cookie-authenticated state-changing request comes from the board's own page:
/// the session's CSRF token in [`CSRF_HEADER`] and, when the browser sent an `Origin`, the
/// node's own origin (`Host`). Err names what is missing.
pub(crate) fn same_origin(headers: &HeaderMap, session: &Session) -> Result<(), String> {
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bool::from(token.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return Err(format!(
            "{CSRF_HEADER}: a request authenticated by the board's session cookie that changes \
             state must carry the session's CSRF token (from /board/api/session)"
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let bare = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if host.is_empty() || bare != host {
            return Err(format!(
                "Origin: {origin} is not this node ({host}); the board's session cookie only \
                 works from the board's own pages"
            ));
        }
    }
    Ok(())
}

/// 401 in FATE's envelope (for JSON requests without a live session).
pub(crate) fn unauthorized(message: impl Into<String>) -> Response {
    let mut e = Envelope::error(RetCode::AuthenticationFailed, message);
    e.http = StatusCode::UNAUTHORIZED;
    e.into_response()
}

/// 403 in FATE's envelope.
pub(crate) fn forbidden(message: impl Into<String>) -> Response {
    let mut e = Envelope::error(RetCode::AuthenticationFailed, message);
    e.http = StatusCode::FORBIDDEN;
    e.into_response()
}

/// The embedded assets: (path under `/board/`, content type, text).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../board/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../board/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/api.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/charts.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/views.js"),
    ),
    (
        "detail.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/detail.js"),
    ),
];

/// Assets the login page needs, served without a session.
const PUBLIC: &[&str] = &["login.html", "style.css", "login.js"];

const LOGIN_HTML: &str = include_str!("../board/login.html");
const LOGIN_JS: &str = include_str!("../board/login.js");

fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "login.html" => Some(("text/html; charset=utf-8", LOGIN_HTML)),
        "login.js" => Some(("text/javascript; charset=utf-8", LOGIN_JS)),
        _ => ASSETS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, t, body)| (*t, *body)),
    }
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
        ],
        body,
    )
        .into_response()
}

/// What the board's routes share.
#[derive(Clone)]
struct BoardState {
    board: Arc<Board>,
    party_ids: Vec<String>,
    client_auth: bool,
}

/// The board's routes: `/` (to the board), `/board/login`, `/board/logout`,
/// `/board/api/session`, and the pages and assets under `/board/`.
pub(crate) fn routes(board: Arc<Board>, party_ids: Vec<String>, client_auth: bool) -> Router {
    let state = BoardState {
        board,
        party_ids,
        client_auth,
    };
    let private = Router::new()
        .route("/board/", get(|| async { page("index.html") }))
        .route("/board", get(|| async { Redirect::to("/board/") }))
        .route("/board/{file}", get(asset_route))
        .route("/board/api/session", get(session_info))
        .route("/board/logout", post(logout))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/", get(|| async { Redirect::to("/board/") }))
        .route("/board/login", get(|| async { page("login.html") }))
        .route(
            "/board/login",
            post(login).layer(axum::extract::DefaultBodyLimit::max(LOGIN_BODY_LIMIT)),
        )
        .merge(private)
        .with_state(state)
}

fn page(name: &str) -> Response {
    match asset(name) {
        Some((t, body)) => serve(t, body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn asset_route(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match asset(&file) {
        Some((t, body)) => serve(t, body),
        None => {
            let mut e = Envelope::error(
                RetCode::InvalidParameter,
                format!("/board/{file}: no such page or asset"),
            );
            e.http = StatusCode::NOT_FOUND;
            e.into_response()
        }
    }
}

/// Pages and assets (other than the login page's) need a live session: HTML requests are
/// sent to the login page, others get 401.
async fn require_session(State(st): State<BoardState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let public = path
        .strip_prefix("/board/")
        .is_some_and(|f| PUBLIC.contains(&f));
    let live =
        cookie(request.headers(), COOKIE).and_then(|id| st.board.session(id, fate_store::now_ms()));
    if public || live.is_some() {
        let mut request = request;
        if let Some(s) = live {
            request.extensions_mut().insert(s);
        }
        return next.run(request).await;
    }
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html && request.method() == axum::http::Method::GET {
        return Redirect::to("/board/login").into_response();
    }
    unauthorized(format!(
        "{path}: log in to the board first (POST /board/login), or the session has expired"
    ))
}

fn session_cookie(id: &str, max_age_s: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// `POST /board/login` with `{user, password}` (JSON) or a form.
async fn login(State(st): State<BoardState>, headers: HeaderMap, body: String) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let (user, password) = if is_json {
        match serde_json::from_str::<Value>(&body) {
            Ok(v) => (
                v["user"].as_str().unwrap_or("").to_string(),
                v["password"].as_str().unwrap_or("").to_string(),
            ),
            Err(e) => {
                return Envelope::error(
                    RetCode::InvalidParameter,
                    format!("body: malformed JSON: {e}"),
                )
                .into_response();
            }
        }
    } else {
        let mut user = String::new();
        let mut password = String::new();
        for (k, v) in form_pairs(&body) {
            match k.as_str() {
                "user" => user = v,
                "password" => password = v,
                _ => {}
            }
        }
        (user, password)
    };
    if user.is_empty() {
        return Envelope::error(RetCode::InvalidParameter, "user: is required").into_response();
    }
    match st.board.login(&user, &password, fate_store::now_ms()) {
        Ok(id) => {
            tracing::info!(user, "Board login.");
            let max_age = st.board.config.session_minutes.max(1) as i64 * 60;
            let mut r = Envelope::ok(json!({"user": user})).into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&id, max_age));
            r
        }
        Err(e @ LoginError::Throttled { retry_after_s }) => {
            tracing::warn!(
                user,
                retry_after_s,
                "Board login refused: too many failures."
            );
            let mut env = Envelope::error(RetCode::AuthenticationFailed, e.to_string());
            env.http = StatusCode::TOO_MANY_REQUESTS;
            let mut r = env.into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            r
        }
        Err(e) => {
            tracing::warn!(user, "Board login refused.");
            unauthorized(e.to_string())
        }
    }
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn form_pairs(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

async fn logout(State(st): State<BoardState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        if let Some(s) = st.board.session(id, fate_store::now_ms())
            && let Err(m) = same_origin(&headers, &s)
        {
            return forbidden(m);
        }
        st.board.logout(id);
    }
    let mut r = Envelope::ok(json!({})).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    r
}

/// `GET /board/api/session`: who is logged in, the CSRF token for state-changing requests,
/// and the parties this node hosts (the board's only JSON beyond FATE-Flow's API).
async fn session_info(
    State(st): State<BoardState>,
    session: Option<axum::Extension<Session>>,
) -> Response {
    let Some(axum::Extension(s)) = session else {
        return unauthorized("log in to the board first");
    };
    Envelope::ok(json!({
        "user": s.user,
        "csrf": s.csrf,
        "expires_ms": s.expires_ms,
        "party_ids": st.party_ids,
        "client_auth": st.client_auth,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(minutes: u64) -> Board {
        Board::new(BoardConfig {
            user: "admin".into(),
            password: "secret".into(),
            session_minutes: minutes,
        })
    }

    #[test]
    fn sessions_expire_and_wrong_logins_are_refused() {
        let b = board(1);
        assert_eq!(b.login("admin", "wrong", 0), Err(LoginError::Wrong));
        assert_eq!(b.login("root", "secret", 0), Err(LoginError::Wrong));
        let id = b.login("admin", "secret", 0).unwrap();
        assert_eq!(id.len(), 64);
        assert!(b.session(&id, 59_999).is_some());
        assert!(b.session(&id, 60_000).is_none());
        assert!(b.is_empty());
    }

    #[test]
    fn failed_logins_in_a_row_make_the_next_wait() {
        let b = board(10);
        for i in 0..FREE_LOGIN_FAILURES as i64 {
            assert_eq!(b.login("admin", "guess", i), Err(LoginError::Wrong));
        }
        // The fifth failure at t=4 ms: nothing, not even the right password, before t=1004.
        assert_eq!(
            b.login("admin", "secret", 500),
            Err(LoginError::Throttled { retry_after_s: 1 })
        );
        // The next failure doubles the wait.
        assert_eq!(b.login("admin", "guess", 1004), Err(LoginError::Wrong));
        assert_eq!(
            b.login("admin", "guess", 1005),
            Err(LoginError::Throttled { retry_after_s: 2 })
        );
        // Waits are capped.
        let mut t = 10_000;
        for _ in 0..20 {
            t += MAX_LOGIN_WAIT_MS;
            assert_eq!(b.login("admin", "guess", t), Err(LoginError::Wrong));
        }
        assert_eq!(
            b.login("admin", "secret", t + 1),
            Err(LoginError::Throttled { retry_after_s: 60 })
        );
        // A success after the wait resets the count.
        assert!(b.login("admin", "secret", t + MAX_LOGIN_WAIT_MS).is_ok());
        assert_eq!(
            b.login("admin", "guess", t + MAX_LOGIN_WAIT_MS + 1),
            Err(LoginError::Wrong)
        );
        assert!(
            b.login("admin", "secret", t + MAX_LOGIN_WAIT_MS + 2)
                .is_ok()
        );
    }

    #[test]
    fn the_session_table_is_bounded() {
        let b = board(10);
        for i in 0..MAX_SESSIONS + 10 {
            b.login("admin", "secret", i as i64).unwrap();
        }
        assert_eq!(b.len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_and_forms_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; fate_board_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(
            form_pairs("user=ad%20min&password=a+b%2"),
            vec![
                ("user".to_string(), "ad min".to_string()),
                ("password".to_string(), "a b%2".to_string())
            ]
        );
        let s = Session {
            user: "admin".into(),
            csrf: "tok".into(),
            expires_ms: 1,
        };
        let mut h = HeaderMap::new();
        assert!(same_origin(&h, &s).is_err());
        h.insert(CSRF_HEADER, HeaderValue::from_static("tok"));
        assert!(same_origin(&h, &s).is_ok());
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9380"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_origin(&h, &s).is_err());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9380"),
        );
        assert!(same_origin(&h, &s).is_ok());
    }
}
