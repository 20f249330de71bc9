//! FATE-Flow's partner endpoints (`/v2/partner/*`, fate-spec §3.1): what one party's node asks
//! another's. They arrive through the site routers (FATE's `unaryCall` command relay), which
//! the node replays as local HTTP requests with the caller's party in `x-fate-src-party`.

use crate::envelope::{ApiError, Envelope};
use crate::routes::{ApiState, body_json, req_job_id};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use fate_scheduler::site::paths;
use fate_types::RetCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Header carrying the calling party (set by the node that replays a relayed command).
pub const SRC_PARTY_HEADER: &str = "x-fate-src-party";

type ApiResult = Result<Envelope, ApiError>;

pub(crate) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route(paths::JOB_CREATE, post(job_create))
        .route(paths::JOB_STOP, post(job_stop))
        .route(paths::JOB_RERUN, post(job_rerun))
        .route(paths::JOB_COLLECT, post(job_collect))
        .route(paths::PING, post(ping))
}

fn src_party(headers: &HeaderMap) -> String {
    headers
        .get(SRC_PARTY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string()
}

fn partner_error(e: fate_scheduler::SchedulerError) -> ApiError {
    match e {
        fate_scheduler::SchedulerError::Partner(msg) => {
            ApiError(Envelope::error(RetCode::CreateJobFailed, msg))
        }
        other => other.into(),
    }
}

async fn job_create(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let dag = m
        .get("dag")
        .cloned()
        .ok_or_else(|| ApiError::param("dag", "is required"))?;
    let user = m.get("user_name").and_then(Value::as_str).unwrap_or("");
    st.scheduler
        .accept_job(&src_party(&headers), &job_id, dag, user)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

async fn job_stop(State(st): State<Arc<ApiState>>, headers: HeaderMap, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let reason = m.get("reason").and_then(Value::as_str).unwrap_or("");
    st.scheduler
        .stop_by_partner(&job_id, &src_party(&headers), reason)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

async fn job_rerun(State(st): State<Arc<ApiState>>, headers: HeaderMap, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let tasks: Vec<String> = match m.get("tasks") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(String::from)
                    .ok_or_else(|| ApiError::param("tasks", "must be a list of task names"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::param("tasks", "must be a list of task names")),
    };
    st.scheduler
        .rerun_by_partner(&src_party(&headers), &job_id, &tasks)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

async fn job_collect(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let data = st
        .scheduler
        .collect(&src_party(&headers), &job_id)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(data).with_job(job_id))
}

async fn ping(State(st): State<Arc<ApiState>>, headers: HeaderMap) -> ApiResult {
    Ok(Envelope::ok(json!({
        "party_ids": st.scheduler.hosted_party_ids(),
        "caller": src_party(&headers),
    })))
}
