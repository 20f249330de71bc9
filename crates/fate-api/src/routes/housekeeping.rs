//! FATE-Flow 2.2's housekeeping endpoints, answered as FATE-Flow answers them
//! (`python/fate_flow/apps/client/{job,output,model,data,provider}_app.py` at v2.2.0):
//! job DAG dependency, notes, queue clean; metric and model deletion; table download;
//! provider query (fate-rs has one built-in provider, which FATE lists as none registered).

use super::{
    ApiResult, ApiState, Params, body_json, ns_name, opt_param, opt_role, req_job_id, req_str,
};
use crate::envelope::{ApiError, Envelope};
use axum::extract::{Query, State};
use fate_store::{JobFilter, ModelSelector};
use fate_types::{JobStatus, RetCode, Role};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The one job row of `(job_id, role, party_id)`, or FATE's job-not-found code.
async fn job_row(
    st: &ApiState,
    job_id: &str,
    role: Role,
    party_id: &str,
) -> Result<fate_store::JobRecord, ApiError> {
    fate_types::check_job_id("job_id", job_id)?;
    let jobs = st
        .scheduler
        .store()
        .jobs(&JobFilter {
            job_id: Some(job_id.into()),
            role: Some(role),
            party_id: Some(party_id.into()),
            ..Default::default()
        })
        .await?;
    jobs.into_iter().next().ok_or_else(|| {
        ApiError(
            Envelope::error(
                RetCode::JobNotFound,
                format!("job {job_id} not found at {role}:{party_id}"),
            )
            .with_job(job_id),
        )
    })
}

fn req_role(p: &HashMap<String, String>) -> Result<Role, ApiError> {
    opt_role(p)?.ok_or_else(|| ApiError::param("role", "is required"))
}

/// `GET /v2/job/dag/dependency?job_id&role&party_id` (FATE's `pipeline_dag_dependency`): the
/// tasks this party runs in dependency order, each task's component, stage and upstream
/// artifacts.
pub(super) async fn dag_dependency(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let job_id = opt_param(&p, "job_id").ok_or_else(|| ApiError::param("job_id", "is required"))?;
    let role = req_role(&p)?;
    let party_id =
        opt_param(&p, "party_id").ok_or_else(|| ApiError::param("party_id", "is required"))?;
    let job = job_row(&st, &job_id, role, &party_id).await?;
    Ok(Envelope::ok(dependency(&job.dag, role, &party_id)))
}

/// Whether `(role, party_id)` is among FATE's `parties` list `[{role, party_id: [..]}]`.
fn party_in(parties: &Value, role: Role, party_id: &str) -> bool {
    parties.as_array().is_some_and(|ps| {
        ps.iter().any(|p| {
            p["role"].as_str() == Some(role.as_str())
                && p["party_id"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(party_id)))
        })
    })
}

/// The upstream artifacts of one task: `(data|model, input key, producer task, output key)`.
fn upstream(task: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let Some(inputs) = task["inputs"].as_object() else {
        return out;
    };
    for (model_type, by_key) in inputs {
        let Some(by_key) = by_key.as_object() else {
            continue;
        };
        for (key, source) in by_key {
            let refs: Vec<&Value> = match &source["task_output_artifact"] {
                Value::Array(a) => a.iter().collect(),
                v @ Value::Object(_) => vec![v],
                _ => vec![],
            };
            for r in refs {
                if let (Some(t), Some(k)) = (
                    r["producer_task"].as_str(),
                    r["output_artifact_key"].as_str(),
                ) {
                    out.push((model_type.clone(), key.clone(), t.into(), k.into()));
                }
            }
        }
    }
    out
}

fn dependency(dag_schema: &Value, role: Role, party_id: &str) -> Value {
    let dag = &dag_schema["dag"];
    let empty = Map::new();
    let tasks = dag["tasks"].as_object().unwrap_or(&empty);
    let mine: BTreeMap<&str, &Value> = tasks
        .iter()
        .filter(|(_, t)| {
            let parties = if t["parties"].is_array() {
                &t["parties"]
            } else {
                &dag["parties"]
            };
            party_in(parties, role, party_id)
        })
        .map(|(n, t)| (n.as_str(), t))
        .collect();
    // Kahn's order over `dependent_tasks` and input producers, ties by name (FATE's
    // `party_topological_sort`).
    let deps = |t: &Value| -> Vec<String> {
        let mut d: Vec<String> = t["dependent_tasks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        d.extend(upstream(t).into_iter().map(|u| u.2));
        d
    };
    let mut order: Vec<&str> = Vec::new();
    let mut left: BTreeMap<&str, &Value> = mine.clone();
    while !left.is_empty() {
        let ready: Vec<&str> = left
            .iter()
            .filter(|(_, t)| {
                deps(t)
                    .iter()
                    .all(|d| !left.contains_key(d.as_str()) || !mine.contains_key(d.as_str()))
            })
            .map(|(n, _)| *n)
            .collect();
        // A cycle cannot pass planning; list what is left rather than loop.
        let ready = if ready.is_empty() {
            left.keys().copied().collect()
        } else {
            ready
        };
        for n in ready {
            left.remove(n);
            order.push(n);
        }
    }
    let mut module = Map::new();
    let mut stage = Map::new();
    let mut dependencies = Map::new();
    let default_stage = dag["stage"].as_str().unwrap_or("default");
    for name in &order {
        let t = mine[name];
        module.insert((*name).into(), t["component_ref"].clone());
        stage.insert(
            (*name).into(),
            json!(t["stage"].as_str().unwrap_or(default_stage)),
        );
        let ups = upstream(t);
        let list: Vec<Value> = if ups.is_empty() {
            vec![json!({"up_output_info": []})]
        } else {
            ups.into_iter()
                .filter(|u| u.2 != *name)
                .map(|(model_type, key, producer, out_key)| {
                    json!({"type": key, "model_type": model_type, "component_name": producer,
                           "up_output_info": [out_key]})
                })
                .collect()
        };
        dependencies.insert((*name).into(), Value::Array(list));
    }
    json!({"component_list": order, "component_stage": stage, "component_module": module,
           "dependencies": dependencies})
}

/// `POST /v2/job/notes/add {job_id, role, party_id, notes}`: sets the job row's description.
pub(super) async fn add_notes(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let job_id = req_job_id(&m)?;
    let role: Role = req_str(&m, "role")?
        .parse()
        .map_err(|e| ApiError::param("role", e))?;
    let party_id = req_str(&m, "party_id")?;
    let notes = match m.get("notes") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::param("notes", "must be a string")),
        None => return Err(ApiError::param("notes", "is required")),
    };
    job_row(&st, &job_id, role, &party_id).await?;
    st.scheduler
        .store()
        .set_job_description(&job_id, role, &party_id, &notes)
        .await?;
    Ok(Envelope::ok(Value::Null).without_data())
}

/// `POST /v2/job/queue/clean`: cancels every job still waiting to start, answering
/// `{job_id: status}` as FATE's `JobController.clean_queue`.
pub(super) async fn clean_queue(State(st): State<Arc<ApiState>>) -> ApiResult {
    let waiting = st
        .scheduler
        .store()
        .jobs(&JobFilter {
            status: Some(JobStatus::Waiting),
            ..Default::default()
        })
        .await?;
    let mut ids: Vec<String> = waiting.into_iter().map(|j| j.job_id).collect();
    ids.sort();
    ids.dedup();
    let mut out = Map::new();
    for id in ids {
        let status = match st.scheduler.stop(&id).await {
            Ok(()) => json!(0),
            Err(e) => json!(e.to_string()),
        };
        out.insert(id, status);
    }
    Ok(Envelope::ok(Value::Object(out)))
}

fn task_key(m: &Map<String, Value>) -> Result<(String, Role, String, String), ApiError> {
    let job_id = req_job_id(m)?;
    let role: Role = req_str(m, "role")?
        .parse()
        .map_err(|e| ApiError::param("role", e))?;
    let party_id = req_str(m, "party_id")?;
    let task_name = req_str(m, "task_name")?;
    Ok((job_id, role, party_id, task_name))
}

/// FATE's `NoFoundTask` when the task does not exist at that party.
async fn existing_task(
    st: &ApiState,
    job_id: &str,
    role: Role,
    party_id: &str,
    task_name: &str,
) -> Result<(), ApiError> {
    let tasks = st
        .scheduler
        .store()
        .tasks(&fate_store::TaskFilter {
            job_id: Some(job_id.into()),
            role: Some(role),
            party_id: Some(party_id.into()),
            task_name: Some(task_name.into()),
            ..Default::default()
        })
        .await?;
    if tasks.is_empty() {
        return Err(ApiError::new(
            RetCode::TaskNotFound,
            format!("no task {task_name} of job {job_id} at {role}:{party_id}"),
        ));
    }
    Ok(())
}

/// `POST /v2/output/metric/delete {job_id, role, party_id, task_name}`: `data` is whether any
/// metric went (FATE's `delete_metrics() > 0`).
pub(super) async fn delete_metric(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let (job_id, role, party_id, task_name) = task_key(&m)?;
    existing_task(&st, &job_id, role, &party_id, &task_name).await?;
    let n = st
        .scheduler
        .store()
        .delete_metrics(&job_id, role, &party_id, &task_name)
        .await?;
    Ok(Envelope::ok(n > 0))
}

/// `POST /v2/output/model/delete {job_id, role, party_id, task_name}`: FATE answers no data.
pub(super) async fn delete_output_model(
    State(st): State<Arc<ApiState>>,
    body: String,
) -> ApiResult {
    let m = body_json(&body)?;
    let (job_id, role, party_id, task_name) = task_key(&m)?;
    existing_task(&st, &job_id, role, &party_id, &task_name).await?;
    st.scheduler
        .store()
        .delete_models(&ModelSelector {
            job_id: Some(&job_id),
            role: Some(role),
            party_id: Some(&party_id),
            task_name: Some(&task_name),
            ..Default::default()
        })
        .await?;
    Ok(Envelope::ok(Value::Null).without_data())
}

/// `POST /v2/model/delete {model_id, model_version, role?, party_id?, task_name?, output_key?}`:
/// `{"count": n}`.
pub(super) async fn delete_model(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let model_id = req_str(&m, "model_id")?;
    let model_version = req_str(&m, "model_version")?;
    let opt = |k: &str| -> Result<Option<String>, ApiError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => req_str(&m, k).map(Some),
        }
    };
    let role = opt("role")?
        .map(|r| r.parse::<Role>().map_err(|e| ApiError::param("role", e)))
        .transpose()?;
    let (party_id, task_name, out_key) = (opt("party_id")?, opt("task_name")?, opt("output_key")?);
    let count = st
        .scheduler
        .store()
        .delete_models(&ModelSelector {
            model_id: Some(&model_id),
            model_version: Some(&model_version),
            role,
            party_id: party_id.as_deref(),
            task_name: task_name.as_deref(),
            output_key: out_key.as_deref(),
            ..Default::default()
        })
        .await?;
    Ok(Envelope::ok(json!({ "count": count })))
}

/// `GET /v2/provider/query`: FATE lists registered providers; fate-rs's components are built
/// in, so none is registered.
pub(super) async fn provider_query() -> Envelope {
    Envelope::ok(json!([]))
}

/// `GET /v2/data/download?namespace&name`: the table as `data/<name>.csv` in a tar, as
/// fate_client's `download_from_request` extracts it.
pub(super) async fn data_download(
    State(st): State<Arc<ApiState>>,
    Query(p): Params,
) -> Result<axum::response::Response, ApiError> {
    let (ns, name) = ns_name(&p)?;
    fate_types::check_name("namespace", &ns)?;
    fate_types::check_name("name", &name)?;
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
    let schema: fate_runtime::Schema = serde_json::from_value(t.schema).unwrap_or_default();
    let files = vec![("data".to_string(), ns, name, schema)];
    super::tables_as_tar(st.scheduler.computing().clone(), files).await
}
