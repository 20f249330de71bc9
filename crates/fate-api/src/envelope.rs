//! FATE's response envelope and the mapping from internal errors to FATE's codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fate_scheduler::SchedulerError;
use fate_store::StoreError;
use fate_types::RetCode;
use serde::Serialize;

/// `{"code": 0, "message": "success", "data": ..., "job_id": ...}` with null fields dropped.
#[derive(Debug, Serialize)]
pub struct Envelope {
    pub code: i32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip)]
    pub http: StatusCode,
}

impl Envelope {
    pub fn ok(data: impl Serialize) -> Self {
        Envelope {
            code: 0,
            message: "success".into(),
            data: Some(serde_json::to_value(data).unwrap_or(serde_json::Value::Null)),
            job_id: None,
            http: StatusCode::OK,
        }
    }

    pub fn error(code: RetCode, message: impl Into<String>) -> Self {
        Envelope {
            code: code.code(),
            message: message.into(),
            data: None,
            job_id: None,
            http: StatusCode::OK,
        }
    }

    pub fn with_job(mut self, job_id: impl Into<String>) -> Self {
        self.job_id = Some(job_id.into());
        self
    }

    /// FATE-Flow drops a `None` data field (`API.Output.json(data=None)`).
    pub fn without_data(mut self) -> Self {
        self.data = None;
        self
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        (self.http, Json(&self)).into_response()
    }
}

/// An error answered in FATE's envelope.
#[derive(Debug)]
pub struct ApiError(pub Envelope);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl ApiError {
    pub fn new(code: RetCode, message: impl Into<String>) -> Self {
        ApiError(Envelope::error(code, message))
    }

    /// An error with a FATE-Flow code that [`RetCode`] does not name (e.g. 2005, "No found
    /// output model") and FATE's message layout `text: key[value],key[value]`
    /// (`fate_flow/errors/__init__.py`, `FateFlowError`).
    pub fn fate(code: i32, text: &str, pairs: &[(&str, &str)]) -> Self {
        let mut message = text.to_string();
        if !pairs.is_empty() {
            let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}[{v}]")).collect();
            message.push_str(": ");
            message.push_str(&parts.join(","));
        }
        let mut e = Envelope::error(RetCode::ServerError, message);
        e.code = code;
        ApiError(e)
    }

    pub fn param(field: &str, reason: impl std::fmt::Display) -> Self {
        ApiError(
            Envelope::error(RetCode::InvalidParameter, format!("{field}: {reason}"))
                .with_data(serde_json::json!({ field: reason.to_string() })),
        )
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match &e {
            SchedulerError::Plan(p) => ApiError(
                Envelope::error(RetCode::JobParams, e.to_string())
                    .with_data(serde_json::json!({"field": p.field, "task": p.task})),
            ),
            SchedulerError::JobNotFound(id) => {
                ApiError(Envelope::error(RetCode::JobNotFound, e.to_string()).with_job(id.clone()))
            }
            SchedulerError::BadState { job_id, .. } => ApiError(
                Envelope::error(RetCode::JobStatus, e.to_string()).with_job(job_id.clone()),
            ),
            SchedulerError::Store(s) => ApiError::from_store(s),
            SchedulerError::Partner(msg) => ApiError::new(RetCode::Federated, msg.clone()),
            SchedulerError::Permission(msg) => ApiError::new(RetCode::NoPermission, msg.clone()),
        }
    }
}

impl ApiError {
    fn from_store(e: &StoreError) -> Self {
        tracing::error!(error = %e, "Metadata store error.");
        ApiError::new(RetCode::ServerError, format!("metadata store: {e}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from_store(&e)
    }
}
