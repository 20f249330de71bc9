//! Files a request names or sends: server-side paths confined to the node's data roots
//! (`fate_runtime::files`), identifiers checked before they become paths, and multipart
//! uploads streamed to `<data_dir>/uploads` with a size cap and removed after use in every
//! outcome.

use super::ApiState;
use crate::envelope::ApiError;
use axum::extract::multipart::Field;
use fate_runtime::{FileError, FileErrorKind};
use fate_types::RetCode;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Largest non-file multipart field (namespace, name, meta, ...).
pub(crate) const MAX_FORM_FIELD_BYTES: usize = 64 << 10;
/// How long an uploaded file is kept for its upload job at most.
const UPLOAD_JOB_WAIT: Duration = Duration::from_secs(24 * 3600);

impl From<fate_types::IdError> for ApiError {
    fn from(e: fate_types::IdError) -> Self {
        ApiError::param(&e.field, e.reason)
    }
}

/// A refused path as FATE's codes: a missing file is `not_found` (FATE's 5007 for uploads,
/// 8001 for binds), anything else an invalid parameter naming the field.
pub(crate) fn file_error(e: FileError, not_found: impl FnOnce(&FileError) -> ApiError) -> ApiError {
    match e.kind {
        FileErrorKind::NotFound => not_found(&e),
        _ => ApiError::param(&e.field, e.reason),
    }
}

/// Checks a server path a request names for reading and returns its canonical form.
pub(crate) async fn confined_read_path(
    st: &ApiState,
    field: &str,
    path: &str,
    not_found: impl FnOnce(&FileError) -> ApiError,
) -> Result<String, ApiError> {
    let roots = st.scheduler.data_roots().clone();
    let (field2, path2) = (field.to_string(), path.to_string());
    let checked = tokio::task::spawn_blocking(move || {
        roots
            .open_file(&field2, &path2)
            .map(|(_, canon)| canon.to_string_lossy().to_string())
    })
    .await
    .map_err(|e| ApiError::new(RetCode::ServerError, e.to_string()))?;
    checked.map_err(|e| file_error(e, not_found))
}

/// An uploaded file under the uploads dir, removed when dropped.
pub(crate) struct UploadedFile {
    path: PathBuf,
}

impl UploadedFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UploadedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Streams a multipart `file` field to a new file in the uploads dir, refusing it once it
/// passes the node's limit; the partial file is removed on every error.
pub(crate) async fn save_upload(
    st: &ApiState,
    mut field: Field<'_>,
) -> Result<UploadedFile, ApiError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let server = |e: std::io::Error| ApiError::new(RetCode::ServerError, format!("uploads: {e}"));
    tokio::fs::create_dir_all(&st.upload_dir)
        .await
        .map_err(server)?;
    let name = format!(
        "{}_{}_{}.csv",
        chrono::Utc::now().format("%Y%m%d%H%M%S%f"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let path = st.upload_dir.join(name);
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(server)?;
    let guard = UploadedFile { path };
    let limit = st.scheduler.data_roots().max_file_bytes();
    let mut written: u64 = 0;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::param("file", e))?
    {
        written += chunk.len() as u64;
        if written > limit {
            return Err(ApiError::param(
                "file",
                format!("the upload is larger than this node's limit of {limit} bytes"),
            ));
        }
        out.write_all(&chunk).await.map_err(server)?;
    }
    out.flush().await.map_err(server)?;
    Ok(guard)
}

/// A non-file multipart field as text, at most [`MAX_FORM_FIELD_BYTES`].
pub(crate) async fn form_text(mut field: Field<'_>, name: &str) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| ApiError::param(name, e))? {
        if bytes.len() + chunk.len() > MAX_FORM_FIELD_BYTES {
            return Err(ApiError::param(
                name,
                format!("more than {MAX_FORM_FIELD_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::param(name, "must be UTF-8 text"))
}

/// Keeps `file` until the job that reads it ends, then removes it.
pub(crate) fn remove_after_job(st: &ApiState, job_id: String, file: UploadedFile) {
    let scheduler = st.scheduler.clone();
    tokio::spawn(async move {
        let _ = scheduler.wait(&job_id, UPLOAD_JOB_WAIT).await;
        drop(file);
    });
}

/// At start: removes what a crash left in the uploads dir. A file an unfinished (queued) job
/// still names is kept until that job ends; every other file belonged to a request or a job
/// that is over. Returns how many files were removed.
pub async fn sweep_uploads(st: &ApiState) -> Result<usize, String> {
    let Ok(mut dir) = tokio::fs::read_dir(&st.upload_dir).await else {
        return Ok(0);
    };
    let mut pending = Vec::new();
    for status in [
        fate_types::JobStatus::Waiting,
        fate_types::JobStatus::Running,
    ] {
        let filter = fate_store::JobFilter {
            status: Some(status),
            ..fate_store::JobFilter::default()
        };
        pending.extend(
            st.scheduler
                .store()
                .jobs(&filter)
                .await
                .map_err(|e| format!("uploads: metadata store: {e}"))?,
        );
    }
    let mut removed = 0;
    while let Ok(Some(entry)) = dir.next_entry().await {
        let path = entry.path();
        // Upload names are unique (time, process, sequence): a DAG naming one holds it.
        let name = entry.file_name().to_string_lossy().to_string();
        match pending.iter().find(|j| j.dag.to_string().contains(&name)) {
            Some(job) => remove_after_job(st, job.job_id.clone(), UploadedFile { path }),
            None => {
                if tokio::fs::remove_file(&path).await.is_ok() {
                    removed += 1;
                }
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %st.upload_dir.display(), "Removed uploads left by an earlier run.");
    }
    Ok(removed)
}
