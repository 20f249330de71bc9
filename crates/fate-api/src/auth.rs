//! FATE-Flow 2.x client authentication (fate-spec §3.4 "Client auth signature";
//! `fate_flow/hook/flow/client_authentication.py`, `controller/permission.py`).
//!
//! A client signs every request with the app id and token an operator gave it:
//! headers `appId`, `userName`, `Nonce` (4 digits), `Timestamp` (epoch ms) and
//! `Signature = md5_hex(md5_hex(appId + userName + Nonce + Timestamp) + app_token)`, which is
//! what `fate_client` sends after `flow init --app-id --app-token`. The node answers, as FATE:
//! 5001 naming a missing header, 5000 for a timestamp more than a minute old, 5002 for an
//! unknown app, 5003 for a wrong signature, 5004 when no role of the app allows the endpoint.
//!
//! Beyond FATE: a timestamp more than a minute in the future is refused too, and a signature
//! seen before within the window is refused as a replay (FATE accepts both). Signatures are
//! compared in constant time.
//!
//! Roles (FATE's casbin roles): `client` may call every endpoint except app and permission
//! management; `super_client` may call everything. An app created through the API or
//! `fate app create` gets `client`; the admin app a node creates on first start gets both.

use crate::envelope::Envelope;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fate_store::{AppRecord, MetaStore};
use fate_types::RetCode;
use md5::{Digest, Md5};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// How far a request's timestamp may be from the node's clock (FATE: `check_if_expired`, 60 s).
pub const MAX_CLOCK_SKEW_MS: i64 = 60_000;
/// Signatures remembered for replay detection. Each is remembered for the skew window only;
/// when this many are live at once, new requests are refused until the oldest expire.
pub const REPLAY_MEMORY: usize = 65_536;

/// The role that may call every endpoint except app and permission management.
pub const ROLE_CLIENT: &str = "client";
/// The role that may also manage apps and permissions.
pub const ROLE_SUPER_CLIENT: &str = "super_client";
/// Roles an app may be granted.
pub const ROLES: [&str; 2] = [ROLE_CLIENT, ROLE_SUPER_CLIENT];

/// FATE's signature: `md5_hex(md5_hex(app_id + user_name + nonce + timestamp) + app_token)`.
pub fn sign(
    app_id: &str,
    app_token: &str,
    user_name: &str,
    nonce: &str,
    timestamp: &str,
) -> String {
    let key = hex(&Md5::digest(
        format!("{app_id}{user_name}{nonce}{timestamp}").as_bytes(),
    ));
    hex(&Md5::digest(format!("{key}{app_token}").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new app with a random id and token (32 hex digits each, from the OS's generator).
pub fn new_app(app_name: &str, now_ms: i64) -> AppRecord {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    AppRecord {
        app_id: hex(&bytes[..16]),
        app_name: app_name.to_string(),
        app_token: hex(&bytes[16..]),
        app_type: "client".into(),
        create_time: now_ms,
    }
}

/// Client authentication for one API: the store of apps and the replay memory.
pub struct ClientAuth {
    store: MetaStore,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    by_signature: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl Seen {
    /// Records `signature` first seen at `now`; false if it is live already or memory is full.
    fn insert(&mut self, signature: &str, now: i64) -> Result<(), &'static str> {
        while let Some((at, _)) = self.order.front() {
            if now - at <= 2 * MAX_CLOCK_SKEW_MS {
                break;
            }
            if let Some((_, s)) = self.order.pop_front() {
                self.by_signature.remove(&s);
            }
        }
        if self.by_signature.contains_key(signature) {
            return Err("this signature was used before (a replayed request)");
        }
        if self.by_signature.len() >= REPLAY_MEMORY {
            return Err("too many signed requests in the last two minutes; try again shortly");
        }
        self.by_signature.insert(signature.to_string(), now);
        self.order.push_back((now, signature.to_string()));
        Ok(())
    }
}

/// Why a request was refused: FATE's code and a message naming the header or app.
#[derive(Debug)]
pub struct Refused {
    pub code: RetCode,
    pub message: String,
}

impl Refused {
    fn new(code: RetCode, message: impl Into<String>) -> Self {
        Refused {
            code,
            message: message.into(),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl ClientAuth {
    pub fn new(store: MetaStore) -> Self {
        ClientAuth {
            store,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Checks the signed headers of a request for `path` at `now_ms`; returns the app id.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        path: &str,
        now_ms: i64,
    ) -> Result<String, Refused> {
        let missing = |name: &str, what: &str| {
            Refused::new(
                RetCode::InvalidParameter,
                format!(
                    "{name}: this node requires client authentication; send the {what} header \
                     (fate_client: flow init --app-id ... --app-token ...; fate: FATE_APP_ID and \
                     FATE_APP_TOKEN)"
                ),
            )
        };
        let app_id = header(headers, "appId")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("appId", "appId"))?;
        let user_name = header(headers, "userName").unwrap_or("");
        let timestamp = header(headers, "Timestamp")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("Timestamp", "Timestamp (epoch milliseconds)"))?;
        let nonce = header(headers, "Nonce")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("Nonce", "Nonce (4 digits)"))?;
        let signature = header(headers, "Signature")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("Signature", "Signature"))?;
        if nonce.chars().count() != 4 {
            return Err(Refused::new(
                RetCode::InvalidParameter,
                format!("Nonce: {nonce:?} is not 4 characters"),
            ));
        }
        let ts: i64 = timestamp.parse().map_err(|_| {
            Refused::new(
                RetCode::InvalidParameter,
                format!("Timestamp: {timestamp:?} is not epoch milliseconds"),
            )
        })?;
        if ts.saturating_add(MAX_CLOCK_SKEW_MS) < now_ms {
            return Err(Refused::new(
                RetCode::Expired,
                format!(
                    "Request has expired: Timestamp {ts} is {} s old, more than {} s",
                    (now_ms - ts) / 1000,
                    MAX_CLOCK_SKEW_MS / 1000
                ),
            ));
        }
        if ts > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(Refused::new(
                RetCode::Expired,
                format!(
                    "Timestamp {ts} is {} s ahead of this node's clock, more than {} s",
                    (ts - now_ms) / 1000,
                    MAX_CLOCK_SKEW_MS / 1000
                ),
            ));
        }
        let app = self
            .store
            .app(app_id)
            .await
            .map_err(|e| Refused::new(RetCode::ServerError, format!("metadata store: {e}")))?
            .ok_or_else(|| {
                Refused::new(
                    RetCode::NoFoundAppId,
                    format!("No found appid: app_id[{app_id}]"),
                )
            })?;
        let expected = sign(app_id, &app.app_token, user_name, nonce, timestamp);
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return Err(Refused::new(
                RetCode::VerifyFailed,
                format!("varify failed!: the Signature does not match app {app_id}'s token"),
            ));
        }
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(signature, now_ms)
            .map_err(|m| Refused::new(RetCode::VerifyFailed, m))?;
        let roles = self
            .store
            .roles(app_id)
            .await
            .map_err(|e| Refused::new(RetCode::ServerError, format!("metadata store: {e}")))?;
        let admin_path = admin_path(path);
        let allowed = roles.iter().any(|r| r == ROLE_SUPER_CLIENT)
            || (!admin_path && roles.iter().any(|r| r == ROLE_CLIENT));
        if !allowed {
            return Err(Refused::new(
                RetCode::AuthenticationFailed,
                format!(
                    "Authentication Failed: app {app_id} (roles [{}]) may not call {path}{}",
                    roles.join(","),
                    if admin_path {
                        "; managing apps and permissions needs the super_client role"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(app_id.to_string())
    }
}

/// The app that signed a request (an extension set by [`require`]).
#[derive(Clone, Debug)]
pub struct Caller(pub String);

/// Who authenticates requests to the client API: FATE's signed headers (when client
/// authentication is on) and the board's session cookie (when the node serves the board).
pub(crate) struct Gate {
    pub client: Option<Arc<ClientAuth>>,
    pub board: Option<Arc<crate::board::Board>>,
}

/// Whether `path` manages apps or permissions (the `super_client` role's only).
fn admin_path(path: &str) -> bool {
    path.starts_with("/v2/app/") || path.starts_with("/v2/permission/")
}

/// Middleware over every client route. A request with signed headers (`appId`) is judged by
/// [`ClientAuth::verify`]; one with the board's session cookie and no signature by its
/// session: a live session is a `client` (never `super_client`), and a state-changing
/// request must also pass [`crate::board::same_origin`]; an unknown or expired session is
/// 401 even when client authentication is off. Without either, the request needs a
/// signature when client authentication is on, and passes when it is off (FATE's client on a
/// loopback node, as before the board).
pub(crate) async fn gate(
    State(gate): State<Arc<Gate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let signed = request.headers().contains_key("appId");
    if !signed
        && let Some(board) = &gate.board
        && let Some(id) = crate::board::cookie(request.headers(), crate::board::COOKIE)
    {
        let Some(session) = board.session(id, fate_store::now_ms()) else {
            tracing::warn!(%path, "Request with an unknown or expired board session refused.");
            return crate::board::unauthorized(format!(
                "{path}: the board session is unknown or has expired; log in again at /board/login"
            ));
        };
        if admin_path(&path) {
            return crate::board::forbidden(format!(
                "Authentication Failed: the board's session may not call {path}; managing apps \
                 and permissions needs an app with the super_client role"
            ));
        }
        let safe = matches!(
            *request.method(),
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        if !safe && let Err(m) = crate::board::same_origin(request.headers(), &session) {
            tracing::warn!(%path, reason = %m, "Cross-site board request refused.");
            return crate::board::forbidden(m);
        }
        request
            .extensions_mut()
            .insert(Caller(format!("board:{}", session.user)));
        return next.run(request).await;
    }
    let Some(auth) = &gate.client else {
        return next.run(request).await;
    };
    match auth
        .verify(request.headers(), &path, fate_store::now_ms())
        .await
    {
        Ok(app_id) => {
            request.extensions_mut().insert(Caller(app_id));
            next.run(request).await
        }
        Err(refused) => {
            tracing::warn!(code = refused.code.code(), %path, reason = %refused.message, "Request refused by client authentication.");
            Envelope::error(refused.code, refused.message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_fates() {
        // md5_hex("app" + "user" + "1234" + "1700000000000") = key; md5_hex(key + "token").
        let key = hex(&Md5::digest(b"appuser12341700000000000"));
        let want = hex(&Md5::digest(format!("{key}token").as_bytes()));
        assert_eq!(sign("app", "token", "user", "1234", "1700000000000"), want);
        assert_eq!(want.len(), 32);
    }

    #[test]
    fn replay_memory_forgets_after_the_window_and_is_bounded() {
        let mut seen = Seen::default();
        assert!(seen.insert("a", 0).is_ok());
        assert!(seen.insert("a", 1).is_err());
        assert!(seen.insert("a", 2 * MAX_CLOCK_SKEW_MS + 1).is_ok());
        let mut seen = Seen::default();
        for i in 0..REPLAY_MEMORY {
            seen.insert(&i.to_string(), 0).unwrap();
        }
        assert!(seen.insert("one more", 1).is_err());
        assert!(seen.insert("one more", 2 * MAX_CLOCK_SKEW_MS + 1).is_ok());
        assert_eq!(seen.by_signature.len(), 1);
    }
}
