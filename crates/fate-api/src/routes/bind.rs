//! `POST /v2/table/bind/path {namespace, name, path}` (fate-spec §3.4; fate_client's
//! `flow table bind` and the pipeline SDK's `bind_local_path`).
//!
//! FATE-Flow 2.2 (`apps/client/table_app.py`) records a table of engine `PATH` whose address is
//! the path, as a `data_directory`, and reads nothing. fate-rs components read dataframes from
//! its table store, so binding here loads the CSV file at `path` into the table exactly as
//! `/data/component/upload` would (an upload job at `local`/`0`, same `meta`, `head`,
//! `partitions`, `extend_sid` and `overwrite` fields, all optional: by default a header line,
//! `,` and the first column as id), waits for it, and records the bound path as the table's
//! `path` and in its `source`. When the call returns the table is there, as with FATE, so a
//! job submitted next reads it with `reader`. A directory is refused: no fate-rs component
//! consumes FATE's `data_directory` tables.

use super::{ApiResult, ApiState, body_json, req_str, submit_upload};
use crate::envelope::{ApiError, Envelope};
use axum::extract::State;
use fate_store::JobFilter;
use fate_types::RetCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// FATE-Flow's `File.FILE_NOT_FOUND` ("No found file or dir").
pub(super) const FILE_NOT_FOUND: i32 = 8001;
/// How long the call waits for the file to load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(3600);

pub(super) async fn bind_path(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let mut m = body_json(&body)?;
    let namespace = req_str(&m, "namespace")?;
    let name = req_str(&m, "name")?;
    let path = req_str(&m, "path")?;
    fate_types::check_name("namespace", &namespace)?;
    fate_types::check_name("name", &name)?;
    // Only regular files under the data roots (a directory is refused too: no fate-rs
    // component consumes FATE's data_directory tables); the load task checks again.
    let path = super::files::confined_read_path(&st, "path", &path, |_| {
        ApiError::fate(FILE_NOT_FOUND, "No found file or dir", &[("path", &path)])
    })
    .await?;
    m.entry("head").or_insert(Value::Bool(true));
    // FATE's bind creates table metadata, which an existing table's refuses; unlike an
    // upload, a bind replaces a table only when asked (`overwrite: true`).
    m.entry("overwrite").or_insert(Value::Bool(false));
    let submitted = submit_upload(&st, &m, &path).await?;
    let job_id = submitted.job_id.clone().unwrap_or_default();
    let status = st.scheduler.wait(&job_id, LOAD_TIMEOUT).await?;
    if !status.is_end() {
        return Err(ApiError(
            Envelope::error(
                RetCode::ServerError,
                format!("`{path}` is still loading after {LOAD_TIMEOUT:?}; see job {job_id}"),
            )
            .with_job(job_id),
        ));
    }
    let store = st.scheduler.store();
    if status != fate_types::JobStatus::Success {
        let error = store
            .jobs(&JobFilter {
                job_id: Some(job_id.clone()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .find_map(|j| j.error)
            .unwrap_or_else(|| format!("the load job ended {status}"));
        let mut e = ApiError::param("path", format!("`{path}`: {error}"));
        e.0 = e.0.with_job(job_id);
        return Err(e);
    }
    let mut table = store.table(&namespace, &name).await?.ok_or_else(|| {
        ApiError::new(
            RetCode::ServerError,
            format!("table {namespace}.{name} missing after its load job {job_id}"),
        )
    })?;
    table.path = path.clone();
    if let Value::Object(s) = &mut table.source {
        s.insert("bind_path".into(), json!(path));
    }
    store.put_table(&table, true).await?;
    Ok(Envelope::ok(
        json!({"namespace": namespace, "name": name, "path": path, "count": table.count}),
    )
    .with_job(job_id))
}
