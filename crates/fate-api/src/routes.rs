//! Handlers, one per FATE-Flow endpoint (fate-spec §3.4 table "Client-facing").

use crate::envelope::{ApiError, Envelope};
use axum::Router;
use axum::extract::{Multipart, Query, State};
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use fate_scheduler::Scheduler;
use fate_store::{JobFilter, JobRecord, TaskFilter};
use fate_types::{JobStatus, RetCode, Role, TaskStatus};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

mod artifacts;
mod bind;
mod files;
mod housekeeping;
mod job_logs;
mod limits;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub scheduler: Scheduler,
    /// Where multipart uploads are written before their upload job reads them.
    pub upload_dir: PathBuf,
    /// `host:port` this node serves on (for `/v2/server/fateflow`).
    pub address: String,
    /// FATE's client authentication; `None` serves every request unsigned (loopback only,
    /// unless the operator chose otherwise).
    pub auth: Option<Arc<crate::auth::ClientAuth>>,
    /// The board's login and sessions; `None` serves no board (`/` is then 404).
    pub board: Option<Arc<crate::board::Board>>,
    /// Online serving: loaded models, services, metrics (`crate::serving`).
    pub serving: Arc<crate::serving::Serving>,
}

pub use limits::JSON_BODY_LIMIT;
pub(crate) use limits::rejection_envelope;

pub(crate) use artifacts::read_model_archive;
pub use files::sweep_uploads;

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Envelope, ApiError>;

/// The client API. Unknown paths answer FATE's envelope naming the path. With
/// [`ApiState::auth`], every request, unknown paths included, must be signed first. The
/// partner endpoints are not here: see [`crate::partner_router`].
pub fn router(state: ApiState) -> Router {
    let gate = crate::auth::Gate {
        client: state.auth.clone(),
        board: state.board.clone(),
    };
    let board = state
        .board
        .clone()
        .map(|b| crate::board::routes(b, state.scheduler.hosted_party_ids(), state.auth.is_some()));
    let api = Router::new()
        .route("/v2/job/submit", post(job_submit))
        .route("/v1/job/submit", post(job_submit_v1))
        .route("/v2/job/query", get(job_query))
        .route("/v2/job/stop", post(job_stop))
        .route("/v2/job/rerun", post(job_rerun))
        .route("/v2/job/clean", post(job_clean))
        .route("/v2/job/queue/clean", post(housekeeping::clean_queue))
        .route("/v2/job/notes/add", post(housekeeping::add_notes))
        .route("/v2/job/dag/dependency", get(housekeeping::dag_dependency))
        .route(
            "/v2/output/metric/delete",
            post(housekeeping::delete_metric),
        )
        .route(
            "/v2/output/model/delete",
            post(housekeeping::delete_output_model),
        )
        .route("/v2/model/delete", post(housekeeping::delete_model))
        .route("/v2/provider/query", get(housekeeping::provider_query))
        .route("/v2/data/download", get(housekeeping::data_download))
        .route("/v2/job/list/query", get(job_list))
        .route("/v2/job/task/query", get(task_query))
        .route("/v2/job/task/list/query", get(task_list))
        .route("/v2/job/task/transcript", get(task_transcript))
        .route("/v2/log/query", get(log_query))
        .route("/v2/log/count", get(log_count))
        .route("/v2/data/component/upload", post(upload_path))
        .route(
            "/v2/data/component/upload/file",
            // Streamed to disk and capped there at the node's file limit (`files::save_upload`).
            post(upload_file).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v2/table/query", get(table_query))
        .route("/v2/table/delete", post(table_delete))
        .route("/v2/table/bind/path", post(bind::bind_path))
        .route("/v2/job/log/download", post(job_logs::download))
        .route("/v2/output/model/download", get(artifacts::download))
        .route("/v2/model/export", post(artifacts::export))
        .route(
            "/v2/model/import",
            post(artifacts::import).layer(axum::extract::DefaultBodyLimit::max(
                artifacts::IMPORT_LIMIT,
            )),
        )
        .route("/v2/output/metric/query", get(metric_query))
        .route("/v2/output/metric/key/query", get(metric_key_query))
        .route("/v2/output/model/query", get(model_query))
        .route("/v2/output/data/table", get(output_data_table))
        .route("/v2/output/data/display", get(output_data_display))
        .route("/v2/output/data/download", get(output_data_download))
        .route("/v2/site/info/query", get(site_info))
        .route("/v2/server/fateflow", get(server_fateflow))
        .route("/v2/serving/model/load", post(crate::serving::load))
        .route("/v2/serving/model/bind", post(crate::serving::bind))
        .route("/v2/serving/model/rollback", post(crate::serving::rollback))
        .route(
            "/v2/serving/service/query",
            get(crate::serving::query).post(crate::serving::query),
        )
        .route("/v2/serving/metrics", get(crate::serving::metrics))
        // FATE-Serving's inference API (fate-spec §6).
        .route("/federation/v1/inference", post(crate::serving::inference))
        .route(
            "/federation/v1/batchInference",
            post(crate::serving::batch_inference),
        )
        .merge(crate::apps::routes())
        .fallback(unsupported)
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT));
    let api = if gate.client.is_some() || gate.board.is_some() {
        api.layer(axum::middleware::from_fn_with_state(
            Arc::new(gate),
            crate::auth::gate,
        ))
    } else {
        api
    };
    let api = api
        .layer(axum::middleware::map_response(limits::rejection_envelope))
        .with_state(Arc::new(state));
    match board {
        Some(board) => board.merge(api),
        None => api,
    }
}

pub(crate) async fn unsupported(method: Method, uri: Uri) -> Envelope {
    let mut e = Envelope::error(
        RetCode::InvalidParameter,
        format!("{method} {} is not supported by fate-rs", uri.path()),
    );
    e.code = 404;
    e.http = axum::http::StatusCode::NOT_FOUND;
    e
}

pub(crate) fn body_json(body: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::param("body", "expected a JSON object")),
        Err(e) => Err(ApiError::param("body", format!("malformed JSON: {e}"))),
    }
}

pub(crate) fn req_str(m: &serde_json::Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match m.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(ApiError::param(field, "must be a non-empty string")),
        None => Err(ApiError::param(field, "is required")),
    }
}

pub(crate) fn opt_role(p: &HashMap<String, String>) -> Result<Option<Role>, ApiError> {
    p.get("role")
        .filter(|s| !s.is_empty())
        .map(|r| r.parse::<Role>().map_err(|e| ApiError::param("role", e)))
        .transpose()
}

pub(crate) fn opt_param(p: &HashMap<String, String>, k: &str) -> Option<String> {
    p.get(k).filter(|s| !s.is_empty()).cloned()
}

fn job_json(j: &JobRecord) -> Value {
    let mut v = serde_json::to_value(j).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("engine_name".into(), json!("standalone"));
        // FATE-Flow's Job row (db_models.py `Job`) fields that scripts read and fate-rs has no
        // other value for: the protocol of a FATE-Flow job and an empty tag.
        m.insert("protocol".into(), json!("fate"));
        m.insert("tag".into(), json!(""));
    }
    v
}

/// A task row as FATE-Flow's `Task.to_human_model_dict()` names it: fate-rs's record plus
/// `party_status` (FATE keeps the party's own view beside the scheduler's; here they agree),
/// `component_parameters` and `provider_name`.
pub(crate) fn task_json(t: &fate_store::TaskRecord) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("party_status".into(), json!(t.status));
        m.insert("component_parameters".into(), t.parameters.clone());
        m.insert("provider_name".into(), json!("fate"));
    }
    v
}

async fn job_submit(
    State(st): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> ApiResult {
    let dag = fate_dag::parse_dag(&body).map_err(|e| {
        ApiError(
            Envelope::error(RetCode::JobParams, e.to_string())
                .with_data(json!({"field": e.field, "task": e.task})),
        )
    })?;
    let user = headers
        .get("user_name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let s = st.scheduler.submit(dag, user).await?;
    Ok(
        Envelope::ok(json!({"model_id": s.model_id, "model_version": s.model_version}))
            .with_job(s.job_id),
    )
}

/// FATE 1.x submit: `{dsl|job_dsl, runtime_conf|job_runtime_conf}` (fate-spec §3.2), converted to
/// the same plan as a 2.x DAG. Answers in FATE 1.x's envelope `{retcode, retmsg, jobId, data}`.
async fn job_submit_v1(State(st): State<Arc<ApiState>>, body: String) -> axum::Json<Value> {
    let reply = |retcode: i64, retmsg: String, job_id: Option<String>, data: Value| {
        axum::Json(json!({"retcode": retcode, "retmsg": retmsg, "jobId": job_id, "data": data}))
    };
    let m = match body_json(&body) {
        Ok(m) => m,
        Err(e) => return reply(101, e.0.message, None, Value::Null),
    };
    let dsl = m.get("dsl").or_else(|| m.get("job_dsl"));
    let conf = m.get("runtime_conf").or_else(|| m.get("job_runtime_conf"));
    let (Some(dsl), Some(conf)) = (dsl, conf) else {
        return reply(
            101,
            "dsl and runtime_conf are required".into(),
            None,
            Value::Null,
        );
    };
    let dag = match fate_dag::dsl_to_dag(dsl, conf, &st.scheduler.registry().specs()) {
        Ok(d) => d,
        Err(e) => {
            return reply(
                101,
                e.to_string(),
                None,
                json!({"field": e.field, "task": e.task}),
            );
        }
    };
    match st.scheduler.submit(dag, "").await {
        Ok(s) => reply(
            0,
            "success".into(),
            Some(s.job_id.clone()),
            json!({"job_id": s.job_id, "model_info": {"model_id": s.model_id, "model_version": s.model_version}}),
        ),
        Err(e) => {
            let retcode = if matches!(e, fate_scheduler::SchedulerError::Plan(_)) {
                101
            } else {
                100
            };
            reply(retcode, e.to_string(), None, Value::Null)
        }
    }
}

/// The job filter of `/job/query` and `/job/list/query` (job_id, role, party_id, status).
fn job_filter(p: &HashMap<String, String>) -> Result<JobFilter, ApiError> {
    let status = p
        .get("status")
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<JobStatus>()
                .map_err(|e| ApiError::param("status", e))
        })
        .transpose()?;
    Ok(JobFilter {
        job_id: opt_param(p, "job_id"),
        role: opt_role(p)?,
        party_id: opt_param(p, "party_id"),
        status,
        ..Default::default()
    })
}

async fn job_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let filter = job_filter(&p)?;
    let jobs = st.scheduler.store().jobs(&filter).await?;
    if jobs.is_empty() {
        let mut e = Envelope::error(
            RetCode::JobNotFound,
            match &filter.job_id {
                Some(id) => format!("job {id} not found"),
                None => "no job matches the query".into(),
            },
        );
        if let Some(id) = filter.job_id {
            e = e.with_job(id);
        }
        return Err(ApiError(e));
    }
    Ok(Envelope::ok(jobs.iter().map(job_json).collect::<Vec<_>>()))
}

async fn job_id_of(body: &str) -> Result<String, ApiError> {
    let m = body_json(body)?;
    req_job_id(&m)
}

/// A `job_id` field, checked to be a job id before it reaches the scheduler or a path.
pub(crate) fn req_job_id(m: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    let job_id = req_str(m, "job_id")?;
    fate_types::check_job_id("job_id", &job_id)?;
    Ok(job_id)
}

async fn job_stop(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let job_id = job_id_of(&body).await?;
    st.scheduler.stop(&job_id).await?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

async fn job_rerun(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let job_id = job_id_of(&body).await?;
    st.scheduler.rerun(&job_id).await?;
    Ok(Envelope::ok(json!({})).with_job(job_id))
}

fn page(p: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let num = |k: &str, d: i64| -> Result<i64, ApiError> {
        p.get(k)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| ApiError::param(k, "must be an integer"))
            })
            .transpose()
            .map(|v| v.unwrap_or(d))
    };
    let limit = num("limit", 20)?.clamp(1, 1000);
    let page = num("page", 1)?.max(1);
    Ok((limit, (page - 1) * limit))
}

async fn job_list(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let (limit, offset) = page(&p)?;
    let base = job_filter(&p)?;
    // FATE-Flow's `description` filter (the board's "notes"), like its other filters, is in
    // the query, and the count is the database's: a page costs one page of rows, not the
    // history (`fate bench board`).
    let filter = JobFilter {
        description: opt_param(&p, "description"),
        ..base
    };
    let count = st.scheduler.store().count_jobs(&filter).await?;
    let jobs = st
        .scheduler
        .store()
        .jobs(&JobFilter {
            limit: Some(limit),
            offset: Some(offset),
            ..filter
        })
        .await?;
    // FATE-Flow 2.2 job_app.py `query_job_list`: `{count, data}`, each job with its
    // `partners` (the other parties' ids, sorted).
    let data: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let mut v = job_json(j);
            let mut partners: Vec<String> = j
                .parties
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| p["party_id"].as_array().cloned().unwrap_or_default())
                .filter_map(|id| match id {
                    Value::String(s) => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .filter(|id| *id != j.party_id)
                .collect();
            partners.sort();
            partners.dedup();
            v["partners"] = json!(partners);
            v
        })
        .collect();
    Ok(Envelope::ok(json!({"count": count, "data": data})))
}

fn task_filter(p: &HashMap<String, String>) -> Result<TaskFilter, ApiError> {
    let status = p
        .get("status")
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<TaskStatus>()
                .map_err(|e| ApiError::param("status", e))
        })
        .transpose()?;
    let task_version = p
        .get("task_version")
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ApiError::param("task_version", "must be an integer"))
        })
        .transpose()?;
    Ok(TaskFilter {
        job_id: opt_param(p, "job_id"),
        task_name: opt_param(p, "task_name"),
        role: opt_role(p)?,
        party_id: opt_param(p, "party_id"),
        status,
        task_version,
        ..Default::default()
    })
}

async fn task_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let tasks = st.scheduler.store().tasks(&task_filter(&p)?).await?;
    if tasks.is_empty() {
        return Err(ApiError::new(
            RetCode::TaskNotFound,
            "no task matches the query",
        ));
    }
    Ok(Envelope::ok(
        tasks.iter().map(task_json).collect::<Vec<_>>(),
    ))
}

/// fate-rs, beyond FATE-Flow: a task's protocol transcript at one of this node's parties, what
/// it sent and received through the federation (`[{direction, peer, name, tag, messages,
/// frames, bytes}]`, the tag's numbers as `*`); never the payloads. The board's task view.
async fn task_transcript(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let mut ids = Vec::new();
    for field in ["job_id", "role", "party_id", "task_name"] {
        let v = opt_param(&p, field).ok_or_else(|| ApiError::param(field, "is required"))?;
        if field == "job_id" {
            fate_types::check_job_id(field, &v)?;
        } else {
            fate_types::check_path_id(field, &v)?;
        }
        ids.push(v);
    }
    match st
        .scheduler
        .transcript(&ids[0], &ids[1], &ids[2], &ids[3])
        .await?
    {
        Some(rows) => Ok(Envelope::ok(rows)),
        None => Err(ApiError::new(
            RetCode::TaskNotFound,
            format!(
                "task {} of job {} has no transcript at {} {}",
                ids[3], ids[0], ids[1], ids[2]
            ),
        )),
    }
}

async fn task_list(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let (limit, offset) = page(&p)?;
    let tasks = st.scheduler.store().tasks(&task_filter(&p)?).await?;
    let count = tasks.len();
    let page: Vec<_> = tasks
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(task_json)
        .collect();
    // FATE-Flow 2.2 job_app.py `query_task_list`: `{count, data}`.
    Ok(Envelope::ok(json!({"count": count, "data": page})))
}

async fn logs_of(
    st: &ApiState,
    p: &HashMap<String, String>,
) -> Result<Vec<fate_scheduler::LogLine>, ApiError> {
    let job_id = opt_param(p, "job_id").ok_or_else(|| ApiError::param("job_id", "is required"))?;
    fate_types::check_job_id("job_id", &job_id)?;
    let mut lines = st
        .scheduler
        .logs(
            &job_id,
            opt_param(p, "role").as_deref(),
            opt_param(p, "party_id").as_deref(),
            opt_param(p, "task_name").as_deref(),
        )
        .await?;
    if let Some(t) = opt_param(p, "log_type") {
        let want = match t.as_str() {
            "schedule_info" | "schedule_error" => Some("schedule"),
            _ => None,
        };
        match want {
            Some(_) => lines.retain(|l| l.task_name == "schedule"),
            None => lines.retain(|l| l.task_name != "schedule"),
        }
        if t.ends_with("_error") {
            lines.retain(|l| l.line.starts_with("[ERROR]"));
        } else if t.ends_with("_warning") {
            lines.retain(|l| l.line.starts_with("[WARNING]"));
        }
    }
    Ok(lines)
}

async fn log_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let lines = logs_of(&st, &p).await?;
    let begin = p
        .get("begin")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let end = p
        .get("end")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let out: Vec<Value> = lines
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i >= begin && *i < end)
        .map(|(i, l)| json!({"line_num": i, "content": l.line, "role": l.role, "party_id": l.party_id, "task_name": l.task_name}))
        .collect();
    Ok(Envelope::ok(out))
}

async fn log_count(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    Ok(Envelope::ok(logs_of(&st, &p).await?.len()))
}

/// Parameters of an upload, from a JSON body or multipart fields.
fn upload_dag(
    m: &serde_json::Map<String, Value>,
    file: &str,
) -> Result<(fate_dag::DagSchema, String, String), ApiError> {
    let namespace = req_str(m, "namespace")?;
    let name = req_str(m, "name")?;
    fate_types::check_name("namespace", &namespace)?;
    fate_types::check_name("name", &name)?;
    let mut params = serde_json::Map::new();
    // Replaces a table of the same name unless the request says otherwise (see `submit_upload`).
    params.insert("overwrite".into(), json!(true));
    params.insert("file".into(), json!(file));
    params.insert("namespace".into(), json!(namespace));
    params.insert("name".into(), json!(name));
    for (k, expect_bool) in [
        ("head", true),
        ("extend_sid", true),
        ("overwrite", true),
        ("partitions", false),
    ] {
        if let Some(v) = m.get(k) {
            let v = match (v, expect_bool) {
                (Value::Bool(_), true) | (Value::Number(_), false) => v.clone(),
                (Value::Number(n), true) => json!(n.as_i64().unwrap_or(0) != 0),
                (Value::String(s), true) => {
                    json!(matches!(s.to_ascii_lowercase().as_str(), "true" | "1"))
                }
                (Value::String(s), false) => json!(
                    s.parse::<u64>()
                        .map_err(|_| ApiError::param(k, "must be an integer"))?
                ),
                _ => {
                    return Err(ApiError::param(
                        k,
                        if expect_bool {
                            "must be a boolean"
                        } else {
                            "must be an integer"
                        },
                    ));
                }
            };
            params.insert(k.into(), v);
        }
    }
    if let Some(meta) = m.get("meta") {
        let meta = match meta {
            Value::String(s) => serde_json::from_str::<Value>(s)
                .map_err(|e| ApiError::param("meta", format!("malformed JSON: {e}")))?,
            other => other.clone(),
        };
        if !meta.is_object() {
            return Err(ApiError::param("meta", "must be an object"));
        }
        params.insert("meta".into(), meta);
    }
    let dag = json!({
        "dag": {
            "parties": [{"role": "local", "party_id": ["0"]}],
            "tasks": {"upload_0": {"component_ref": "upload", "parameters": params}},
        },
        "schema_version": "2.2.0",
    });
    let dag: fate_dag::DagSchema = serde_json::from_value(dag)
        .map_err(|e| ApiError::new(RetCode::ServerError, e.to_string()))?;
    Ok((dag, namespace, name))
}

async fn submit_upload(st: &ApiState, m: &serde_json::Map<String, Value>, file: &str) -> ApiResult {
    let (dag, namespace, name) = upload_dag(m, file)?;
    // FATE-Flow's upload replaces a table of the same name (components/upload.py destroys it
    // before writing), and fate_client 2.2 sends no `overwrite`: only an explicit
    // `overwrite: false` keeps an existing table.
    let keep_existing = matches!(m.get("overwrite"), Some(Value::Bool(false)))
        || matches!(m.get("overwrite"), Some(Value::String(s)) if s == "false" || s == "0");
    if keep_existing
        && st
            .scheduler
            .store()
            .table(&namespace, &name)
            .await?
            .is_some()
    {
        return Err(ApiError::new(
            RetCode::TableExists,
            format!(
                "table {namespace}.{name} exists already; delete it or set overwrite to true to replace it"
            ),
        ));
    }
    let s = st.scheduler.submit(dag, "").await?;
    Ok(Envelope::ok(json!({"name": name, "namespace": namespace})).with_job(s.job_id))
}

async fn upload_path(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let file = req_str(&m, "file")?;
    // Only regular files under the data roots; the upload task checks again when it opens it.
    let file = files::confined_read_path(&st, "file", &file, |e| {
        ApiError::new(RetCode::NoFile, e.to_string())
    })
    .await?;
    submit_upload(&st, &m, &file).await
}

/// Most non-file fields a multipart upload may carry.
const MAX_FORM_FIELDS: usize = 64;

async fn upload_file(State(st): State<Arc<ApiState>>, mut mp: Multipart) -> ApiResult {
    let mut fields = serde_json::Map::new();
    // Removed when this handler returns an error, or once the upload job has ended.
    let mut saved: Option<files::UploadedFile> = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::param("multipart", e))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if saved.is_some() {
                return Err(ApiError::param("file", "sent more than once"));
            }
            saved = Some(files::save_upload(&st, field).await?);
        } else {
            if fields.len() >= MAX_FORM_FIELDS {
                return Err(ApiError::param(
                    "multipart",
                    format!("more than {MAX_FORM_FIELDS} fields"),
                ));
            }
            let text = files::form_text(field, &name).await?;
            fields.insert(name, Value::String(text));
        }
    }
    let saved =
        saved.ok_or_else(|| ApiError::param("file", "is required (a multipart file field)"))?;
    let path = saved.path().to_string_lossy().to_string();
    let reply = submit_upload(&st, &fields, &path).await?;
    if let Some(job_id) = &reply.job_id {
        files::remove_after_job(&st, job_id.clone(), saved);
    }
    Ok(reply)
}

/// `POST /v2/job/clean {job_id}` (FATE-Flow's `JobController.clean_job`): stops the job if it
/// still runs, then removes the output data tables its tasks created at the parties this node
/// keeps. Tables the job only read (a reader's input, an upload's table) stay; so do the job's
/// rows, metrics and models, as FATE keeps its job rows.
async fn job_clean(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let job_id = job_id_of(&body).await?;
    let removed = st.scheduler.clean(&job_id).await?;
    // FATE answers no data (`API.Output.json()`); the removed tables go to the node's log.
    tracing::info!(job_id, removed = ?removed, "Job cleaned.");
    Ok(Envelope::ok(()).without_data())
}

pub(crate) fn ns_name(p: &HashMap<String, String>) -> Result<(String, String), ApiError> {
    let ns =
        opt_param(p, "namespace").ok_or_else(|| ApiError::param("namespace", "is required"))?;
    let name = opt_param(p, "name").ok_or_else(|| ApiError::param("name", "is required"))?;
    Ok((ns, name))
}

async fn table_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let (ns, name) = ns_name(&p)?;
    let t = st
        .scheduler
        .store()
        .table(&ns, &name)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                RetCode::TableNotFound,
                format!("table {ns}.{name} not found"),
            )
        })?;
    Ok(Envelope::ok(json!({
        "namespace": t.namespace, "name": t.name, "count": t.count, "partitions": t.partitions,
        "data_type": "dataframe", "engine": t.engine, "address": t.address, "path": t.path, "meta": t.schema, "source": t.source,
        "create_time": t.create_time,
    })))
}

async fn table_delete(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let (ns, name) = (req_str(&m, "namespace")?, req_str(&m, "name")?);
    // Removes the metadata row and the data, whichever exist: a table half left by a crash
    // is deletable too.
    if !st.scheduler.delete_table(&ns, &name).await? {
        return Err(ApiError::new(
            RetCode::TableNotFound,
            format!("table {ns}.{name} not found"),
        ));
    }
    Ok(Envelope::ok(json!({"namespace": ns, "name": name})))
}

struct OutputKey {
    job_id: String,
    role: Role,
    party_id: String,
    task_name: Option<String>,
}

fn output_key(p: &HashMap<String, String>) -> Result<OutputKey, ApiError> {
    Ok(OutputKey {
        job_id: opt_param(p, "job_id").ok_or_else(|| ApiError::param("job_id", "is required"))?,
        role: opt_role(p)?.ok_or_else(|| ApiError::param("role", "is required"))?,
        party_id: opt_param(p, "party_id")
            .ok_or_else(|| ApiError::param("party_id", "is required"))?,
        task_name: opt_param(p, "task_name"),
    })
}

async fn metric_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let metrics = metrics_of(&st, &p).await?;
    let out: Vec<Value> = metrics
        .into_iter()
        .map(|m| json!({"name": m.name, "type": m.metric_type, "groups": m.groups, "step_axis": m.step_axis, "data": m.data, "task_name": m.task_name}))
        .collect();
    Ok(Envelope::ok(out))
}

/// The metrics of one task output (`/output/metric/query` and `/output/metric/key/query`).
async fn metrics_of(
    st: &ApiState,
    p: &HashMap<String, String>,
) -> Result<Vec<fate_store::MetricRecord>, ApiError> {
    let k = output_key(p)?;
    Ok(st
        .scheduler
        .store()
        .metrics(&k.job_id, k.role, &k.party_id, k.task_name.as_deref())
        .await?)
}

async fn metric_key_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let metrics = metrics_of(&st, &p).await?;
    let out: Vec<Value> = metrics.into_iter().map(|m| json!({"name": m.name, "type": m.metric_type, "groups": m.groups, "step_axis": m.step_axis})).collect();
    Ok(Envelope::ok(out))
}

async fn model_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let k = output_key(&p)?;
    let models = st
        .scheduler
        .store()
        .models(&k.job_id, k.role, &k.party_id, k.task_name.as_deref())
        .await?;
    let mut out = serde_json::Map::new();
    for m in models {
        out.insert(m.output_key.clone(), json!({"data": m.data, "component": m.component, "task_name": m.task_name, "model_id": m.model_id, "model_version": m.model_version}));
    }
    Ok(Envelope::ok(out))
}

async fn output_data_table(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let k = output_key(&p)?;
    let recs = st
        .scheduler
        .store()
        .output_data(&k.job_id, k.role, &k.party_id, k.task_name.as_deref())
        .await?;
    let mut out: serde_json::Map<String, Value> = serde_json::Map::new();
    for r in recs {
        let entry = out.entry(r.output_key.clone()).or_insert_with(|| json!([]));
        if let Value::Array(a) = entry {
            a.push(json!({"namespace": r.namespace, "name": r.name}));
        }
    }
    Ok(Envelope::ok(out))
}

async fn output_data_display(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let k = output_key(&p)?;
    let recs = st
        .scheduler
        .store()
        .output_data(&k.job_id, k.role, &k.party_id, k.task_name.as_deref())
        .await?;
    let computing = st.scheduler.computing().clone();
    let mut out = serde_json::Map::new();
    for r in recs {
        let schema = st
            .scheduler
            .store()
            .table(&r.namespace, &r.name)
            .await?
            .map(|t| t.schema)
            .unwrap_or(Value::Null);
        let comp = computing.clone();
        let (ns, name) = (r.namespace.clone(), r.name.clone());
        let rows = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, String> {
            let table: fate_computing::Table<String, fate_runtime::Row> =
                comp.load(&ns, &name).map_err(|e| e.to_string())?;
            Ok(table
                .take(100)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(k, r)| json!([k, r.match_id, r.label, r.weight, r.features]))
                .collect())
        })
        .await
        .map_err(|e| ApiError::new(RetCode::ServerError, e.to_string()))?
        .map_err(|e| ApiError::new(RetCode::ServerError, e))?;
        out.insert(r.output_key, json!({"header": ["sample_id", "match_id", "label", "weight", "features"], "data": rows, "meta": schema}));
    }
    Ok(Envelope::ok(out))
}

/// A node of a federation answers its party id (FATE's `{"party_id": ...}`); a standalone
/// node, hosting every party, answers FATE's standalone code.
async fn site_info(State(st): State<Arc<ApiState>>) -> Envelope {
    let hosted = st.scheduler.hosted_party_ids();
    match hosted.first() {
        Some(first) => Envelope::ok(json!({"party_id": first, "party_ids": hosted})),
        None => Envelope::error(RetCode::SiteStandalone, "Site is standalone"),
    }
}

async fn server_fateflow(State(st): State<Arc<ApiState>>) -> Envelope {
    let (host, port) = st.address.rsplit_once(':').unwrap_or((&st.address, "9380"));
    Envelope::ok(
        json!({"host": host, "http_port": port.parse::<u16>().unwrap_or(9380), "protocol": "http"}),
    )
}

/// One stored dataframe as CSV in FATE's layout: sample id, match id, label and weight, then the
/// features; a prediction frame (see `fate_runtime::data::predict`) as FATE's predict output:
/// `label, predict_result, predict_score, predict_detail, type`, with predict_detail a quoted
/// `{'class': probability}` map, which is how fate_client parses it.
pub(crate) fn frame_csv(
    schema: &fate_runtime::Schema,
    rows: &[(String, fate_runtime::Row)],
) -> String {
    use fate_runtime::data::predict;
    let num = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{x:.0}")
        } else {
            format!("{x}")
        }
    };
    let mut out = String::new();
    let (sid, mid) = (&schema.sample_id_name, &schema.match_id_name);
    let score = schema.column(predict::SCORE);
    let result = schema.column(predict::RESULT);
    if let (Some(score), Some(result)) = (score, result) {
        let details: Vec<(usize, &str)> = schema
            .feature_names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.strip_prefix(predict::DETAIL_PREFIX).map(|c| (i, c)))
            .collect();
        out.push_str(&format!(
            "{sid},{mid},label,predict_result,predict_score,predict_detail,type\n"
        ));
        // FATE's `type` column: the data set the rows belong to (predict_tools.py
        // `train_set`/`validate_set`/`test_set`).
        let set = schema.dataset_type.as_deref().unwrap_or(predict::TRAIN_SET);
        for (k, r) in rows {
            let s = r.features.get(score).copied().unwrap_or(f64::NAN);
            let detail = if details.is_empty() {
                format!("{{'0': {}, '1': {}}}", 1.0 - s, s)
            } else {
                let parts: Vec<String> = details
                    .iter()
                    .map(|(i, c)| {
                        format!("'{c}': {}", r.features.get(*i).copied().unwrap_or(f64::NAN))
                    })
                    .collect();
                format!("{{{}}}", parts.join(", "))
            };
            let label = r.label.map(num).unwrap_or_default();
            let res = r.features.get(result).copied().map(num).unwrap_or_default();
            out.push_str(&format!(
                "{k},{},{label},{res},{s},\"{detail}\",{set}\n",
                r.match_id
            ));
        }
        return out;
    }
    let mut header = vec![sid.clone(), mid.clone()];
    if let Some(l) = &schema.label_name {
        header.push(l.clone());
    }
    if let Some(w) = &schema.weight_name {
        header.push(w.clone());
    }
    header.extend(schema.feature_names.iter().cloned());
    out.push_str(&header.join(","));
    out.push('\n');
    for (k, r) in rows {
        let mut cells = vec![k.clone(), r.match_id.clone()];
        if schema.label_name.is_some() {
            cells.push(r.label.map(num).unwrap_or_default());
        }
        if schema.weight_name.is_some() {
            cells.push(r.weight.map(num).unwrap_or_default());
        }
        cells.extend(r.features.iter().map(|x| format!("{x}")));
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// `GET /v2/output/data/download`: a tar of `<output_key>/<name>.csv`, as fate_client extracts it.
async fn output_data_download(
    State(st): State<Arc<ApiState>>,
    Query(p): Params,
) -> Result<axum::response::Response, ApiError> {
    let k = output_key(&p)?;
    let only = opt_param(&p, "output_key");
    let recs: Vec<_> = st
        .scheduler
        .store()
        .output_data(&k.job_id, k.role, &k.party_id, k.task_name.as_deref())
        .await?
        .into_iter()
        .filter(|r| only.as_ref().is_none_or(|o| *o == r.output_key))
        .collect();
    if recs.is_empty() {
        return Err(ApiError::new(
            RetCode::TableNotFound,
            format!(
                "no output data for job {} {}:{} task {}",
                k.job_id,
                k.role,
                k.party_id,
                k.task_name.unwrap_or_default()
            ),
        ));
    }
    let mut files = Vec::new();
    for r in recs {
        let schema: fate_runtime::Schema = st
            .scheduler
            .store()
            .table(&r.namespace, &r.name)
            .await?
            .and_then(|t| serde_json::from_value(t.schema).ok())
            .unwrap_or_default();
        files.push((r.output_key, r.namespace, r.name, schema));
    }
    tables_as_tar(st.scheduler.computing().clone(), files).await
}

/// Most rows one download brings into the node's memory (FATE-Flow's download writes a file
/// of any size; here the tar is built in memory, so a request cannot make the node allocate
/// without a bound). About 1 GiB for FATE's 30-feature example rows.
pub const MAX_DOWNLOAD_ROWS: usize = 2_000_000;

/// Answers a tar of one CSV per table, `<dir>/<name>.csv` for each `(dir, namespace, name,
/// schema)` (FATE's download layout), built off the async runtime. A table of more than
/// [`MAX_DOWNLOAD_ROWS`] rows is refused naming it, before anything is collected.
pub(crate) async fn tables_as_tar(
    computing: fate_computing::Computing,
    files: Vec<(String, String, String, fate_runtime::Schema)>,
) -> Result<axum::response::Response, ApiError> {
    let tar = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let mut builder = tar::Builder::new(Vec::new());
        for (dir, ns, name, schema) in files {
            let table: fate_computing::Table<String, fate_runtime::Row> =
                computing.load(&ns, &name).map_err(|e| e.to_string())?;
            let rows = table.collect(MAX_DOWNLOAD_ROWS).map_err(|e| match e {
                fate_computing::ComputingError::TooManyRows { rows, max } => format!(
                    "table {ns}.{name} has {rows} rows, more than a download holds ({max}): \
                     read it from its storage, or query a part with `fate output data` / \
                     `/v2/output/data/display`"
                ),
                e => format!("table {ns}.{name}: {e}"),
            })?;
            let csv = frame_csv(&schema, &rows);
            let mut header = tar::Header::new_gnu();
            header.set_size(csv.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("{dir}/{name}.csv"), csv.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        builder.into_inner().map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::new(RetCode::ServerError, e.to_string()))?
    .map_err(|e| ApiError::new(RetCode::ServerError, e))?;
    Ok(axum::response::IntoResponse::into_response((
        [(axum::http::header::CONTENT_TYPE, "application/x-tar")],
        tar,
    )))
}
