//! FATE-Flow's partner endpoints (`/v2/partner/*`, fate-spec §3.1): what one party's node asks
//! another's. They arrive only through the site routers (FATE's `unaryCall` command relay) on
//! the node's gRPC listener, never on the client API: [`partner_router`] is served by no TCP
//! listener. The node replays each relayed command into it with the calling party as a
//! [`PartnerCaller`] request extension, taken from the relayed packet whose source the routers
//! checked against the mutual-TLS certificate presented to them. No header a caller writes can
//! set it.

use crate::envelope::{ApiError, Envelope};
use crate::routes::{ApiState, body_json, req_job_id};
use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use fate_scheduler::site::paths;
use fate_types::RetCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// The party that made a relayed call, as the routers vouched for it.
#[derive(Clone, Debug)]
pub struct PartnerCaller(pub String);

type ApiResult = Result<Envelope, ApiError>;
type Caller = Option<Extension<PartnerCaller>>;

/// The partner endpoints, for replaying relayed commands (`tower::ServiceExt::oneshot` with a
/// [`PartnerCaller`] extension). A request without the extension is refused.
pub fn partner_router(state: ApiState) -> Router {
    Router::new()
        .route(paths::JOB_CREATE, post(job_create))
        .route(paths::JOB_STOP, post(job_stop))
        .route(paths::JOB_RERUN, post(job_rerun))
        .route(paths::JOB_COLLECT, post(job_collect))
        .route(paths::PING, post(ping))
        .route(
            crate::serving::paths::INFERENCE,
            post(crate::serving::partner_inference),
        )
        .route(
            crate::serving::paths::LOAD,
            post(crate::serving::partner_load),
        )
        .fallback(crate::routes::unsupported)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::routes::JSON_BODY_LIMIT,
        ))
        .layer(axum::middleware::map_response(
            crate::routes::rejection_envelope,
        ))
        .with_state(Arc::new(state))
}

/// The calling party, as the site router named it (never a header the caller wrote).
pub(crate) fn src_party(caller: Caller) -> Result<String, ApiError> {
    caller.map(|Extension(PartnerCaller(p))| p).ok_or_else(|| {
        ApiError::new(
            RetCode::AuthenticationFailed,
            "partner calls are taken only from the site router, which names the calling party",
        )
    })
}

fn partner_error(e: fate_scheduler::SchedulerError) -> ApiError {
    match e {
        fate_scheduler::SchedulerError::Partner(msg) => {
            ApiError(Envelope::error(RetCode::CreateJobFailed, msg))
        }
        other => other.into(),
    }
}

async fn job_create(State(st): State<Arc<ApiState>>, caller: Caller, body: String) -> ApiResult {
    let from = src_party(caller)?;
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let dag = m
        .get("dag")
        .cloned()
        .ok_or_else(|| ApiError::param("dag", "is required"))?;
    let user = m.get("user_name").and_then(Value::as_str).unwrap_or("");
    st.scheduler
        .accept_job(&from, &job_id, dag, user)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

async fn job_stop(State(st): State<Arc<ApiState>>, caller: Caller, body: String) -> ApiResult {
    let from = src_party(caller)?;
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let reason = m.get("reason").and_then(Value::as_str).unwrap_or("");
    st.scheduler
        .stop_by_partner(&job_id, &from, reason)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

async fn job_rerun(State(st): State<Arc<ApiState>>, caller: Caller, body: String) -> ApiResult {
    let from = src_party(caller)?;
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
        .rerun_by_partner(&from, &job_id, &tasks)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

async fn job_collect(State(st): State<Arc<ApiState>>, caller: Caller, body: String) -> ApiResult {
    let from = src_party(caller)?;
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let data = st
        .scheduler
        .collect(&from, &job_id)
        .await
        .map_err(partner_error)?;
    Ok(Envelope::ok(data).with_job(job_id))
}

async fn ping(State(st): State<Arc<ApiState>>, caller: Caller) -> ApiResult {
    let from = src_party(caller)?;
    Ok(Envelope::ok(json!({
        "party_ids": st.scheduler.hosted_party_ids(),
        "caller": from,
    })))
}
