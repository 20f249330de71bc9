//! Bounded request input: every body is read with a size limit before any parser runs, and a
//! request refused by axum's extractors (a body over the limit, a multipart body without its
//! boundary, a query string that does not parse) is answered in FATE's envelope naming what was
//! wrong, like every other error.

use crate::envelope::Envelope;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fate_types::RetCode;

/// Largest JSON (or YAML) request body: FATE's DAGs are a few kilobytes; the DAG parser's own
/// limit is the same (`fate_dag::MAX_DAG_TEXT_BYTES`). Multipart uploads and model imports
/// have their own limits.
pub const JSON_BODY_LIMIT: usize = fate_dag::MAX_DAG_TEXT_BYTES;

/// Rewrites an extractor's plain-text rejection into FATE's envelope; our own answers (JSON)
/// pass unchanged.
pub(crate) async fn rejection_envelope(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/x-"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (field, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            "body",
            format!("body: the request is larger than this endpoint's limit ({text})"),
        )
    } else {
        ("body", format!("body: the request was refused: {text}"))
    };
    let mut e = Envelope::error(RetCode::InvalidParameter, message)
        .with_data(serde_json::json!({ field: text }));
    e.http = status;
    e.into_response()
}
