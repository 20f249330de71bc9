//! `POST /v2/job/log/download {job_id}` (fate_client's `flow job download-log`): the job's log
//! directory as a gzip'd tar with paths relative to it, `application/gzip`, as FATE-Flow 2.2's
//! `apps/client/job_app.py` sends it; fate_client extracts it into `<path>/<job_id>_logs/`.
//! Ours holds `schedule.log` and `<role>/<party_id>/<task_name>.log` (ARCHITECTURE "Logs").
//! An unknown job is FATE's 8001 "No found file or dir" (its log directory does not exist).

use super::artifacts::tar_of;
use super::bind::FILE_NOT_FOUND;
use super::{ApiState, body_json, req_job_id};
use crate::envelope::ApiError;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fate_scheduler::SchedulerError;
use fate_types::RetCode;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

pub(super) async fn download(
    State(st): State<Arc<ApiState>>,
    body: String,
) -> Result<Response, ApiError> {
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let lines = match st.scheduler.logs(&job_id, None, None, None).await {
        Err(SchedulerError::JobNotFound(_)) => {
            return Err(ApiError::fate(
                FILE_NOT_FOUND,
                "No found file or dir",
                &[("job_id", &job_id)],
            ));
        }
        other => other?,
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for l in lines {
        let path = if l.task_name == "schedule" && l.role.is_empty() {
            "schedule.log".to_string()
        } else {
            format!("{}/{}/{}.log", l.role, l.party_id, l.task_name)
        };
        let text = files.entry(path).or_default();
        text.extend_from_slice(l.line.as_bytes());
        text.push(b'\n');
    }
    let body = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let tar = tar_of(&files.into_iter().collect::<Vec<_>>())?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar)?;
        gz.finish()
    })
    .await
    .map_err(|e| ApiError::new(RetCode::ServerError, e.to_string()))?
    .map_err(|e| ApiError::new(RetCode::ServerError, e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"job_{job_id}_log.tar.gz\""),
            ),
        ],
        body,
    )
        .into_response())
}
