//! Online federated inference (issue 15): publishing trained models to services and FATE-Serving's
//! inference API (fate-spec §6) at the guest, the host's part through the partner relay.
//!
//! Publishing (FATE 2.x never defined these; FATE 1.x's `flow model load/bind`):
//! - `POST /v2/serving/model/load` `{model_id, model_version, task_name?, party_id?}`: loads the
//!   typed model a finished training job saved at this node (the guest's, or a host's with its
//!   feature adapter). At the guest it also asks each host of the job to load its part
//!   (`/v2/partner/serving/load`).
//! - `POST /v2/serving/model/bind` `{service_id, model_id, model_version}`: points a service at
//!   a loaded guest model; the binding it replaces is kept for rollback.
//! - `POST /v2/serving/model/rollback` `{service_id}`: back to the previous binding.
//! - `GET|POST /v2/serving/service/query` `{service_id?}`: services and loaded models.
//! - `GET /v2/serving/metrics`: Prometheus text (requests, errors by retcode, latency).
//!
//! Inference (FATE-Serving's HTTP API): `POST /federation/v1/inference` and
//! `/federation/v1/batchInference`, answered with FATE-Serving's retcodes ([`code`]).
//!
//! Each request takes the service's bound model (an `Arc`) once, so a swap never mixes two
//! versions within a request and never drops one; a host is asked with a deadline and only
//! `sendToRemoteFeatureData` goes to it (it looks its features up by `id` in its own table),
//! never the guest's features. The host knows the guest by the certificate its router verified
//! ([`crate::PartnerCaller`]) and answers only the guest of the model's training job.

use crate::PartnerCaller;
use crate::envelope::{ApiError, Envelope};
use crate::routes::{ApiState, body_json};
use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use fate_ml::lr::LrModel;
use fate_store::JobFilter;
use fate_types::{JobStatus, RetCode, Role};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Partner endpoints serving adds to the relay (`/v2/partner/*`).
pub mod paths {
    /// A host's partial scores for ids the guest names.
    pub const INFERENCE: &str = "/v2/partner/serving/inference";
    /// A host loads its part of a model the guest loaded.
    pub const LOAD: &str = "/v2/partner/serving/load";
}

/// FATE-Serving's retcodes (`fate-serving-core/.../constant/StatusCode.java`).
pub mod code {
    pub const SUCCESS: i64 = 0;
    /// A request field missing or malformed (GUEST_PARAM_ERROR / HOST_PARAM_ERROR).
    pub const PARAM_ERROR: i64 = 100;
    /// A feature missing or not a number (GUEST_FEATURE_ERROR).
    pub const FEATURE_ERROR: i64 = 102;
    /// No model (MODEL_NULL / HOST_MODEL_NULL): a host has not loaded its part.
    pub const MODEL_NULL: i64 = 104;
    /// A host not reached within the deadline (NET_ERROR).
    pub const NET_ERROR: i64 = 105;
    /// Loading a model failed (GUEST_LOAD_MODEL_ERROR).
    pub const LOAD_MODEL_ERROR: i64 = 107;
    /// Binding failed (GUEST_BIND_MODEL_ERROR).
    pub const BIND_MODEL_ERROR: i64 = 109;
    pub const SYSTEM_ERROR: i64 = 110;
    /// The host has no features for the id (HOST_FEATURE_NOT_EXIST).
    pub const HOST_FEATURE_NOT_EXIST: i64 = 113;
    /// No service with this id is bound (SERVICE_NOT_FOUND).
    pub const SERVICE_NOT_FOUND: i64 = 122;
}

/// Most rows in one batch inference.
pub const MAX_BATCH: usize = 1000;

/// Most rows a host's feature adapter indexes.
pub const MAX_FEATURE_ROWS: usize = 2_000_000;

/// Most models loaded at one node (each holds its weights and, at a host, its feature index).
pub const MAX_LOADED: usize = 256;

/// Bindings a service remembers for rollback.
const MAX_HISTORY: usize = 16;

/// Longest a guest waits for a host by default.
pub const DEFAULT_HOST_DEADLINE: Duration = Duration::from_secs(3);

/// A loaded model: one party's part of a CoordinatedLR model.
#[derive(Debug)]
pub struct Loaded {
    pub model_id: String,
    pub model_version: String,
    pub job_id: String,
    pub task_name: String,
    pub role: Role,
    pub party_id: String,
    /// The guest party of the training job.
    pub guest: String,
    /// At the guest: the host party ids, in the order of the job's parties (the order of
    /// the partial sums, as in the predict stage).
    pub hosts: Vec<String>,
    pub model: LrModel,
    /// At a host: its features by id (the feature adapter: a table in its storage).
    pub features: Option<FeatureIndex>,
    pub loaded_at: i64,
}

/// A host's feature adapter: a table of its storage, indexed by match id.
#[derive(Debug)]
pub struct FeatureIndex {
    /// `namespace.name` of the table.
    pub table: String,
    pub rows: HashMap<String, Vec<f64>>,
}

#[derive(Debug)]
struct Service {
    current: Arc<Loaded>,
    previous: Vec<Arc<Loaded>>,
    bound_at: i64,
}

type ModelKey = (String, String, String);

#[derive(Default)]
struct Registry {
    /// (model_id, model_version, party_id) → loaded model.
    models: BTreeMap<ModelKey, Arc<Loaded>>,
    services: BTreeMap<String, Service>,
}

/// The node's serving state: loaded models, services, metrics.
pub struct Serving {
    registry: RwLock<Registry>,
    metrics: Metrics,
    /// How long the guest waits for each host.
    pub host_deadline: Duration,
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            registry: RwLock::default(),
            metrics: Metrics::default(),
            host_deadline: DEFAULT_HOST_DEADLINE,
        }
    }
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").finish_non_exhaustive()
    }
}

impl Serving {
    /// The model a service is bound to now (one `Arc`, taken once per request).
    fn bound(&self, service_id: &str) -> Option<Arc<Loaded>> {
        let reg = self.registry.read().unwrap_or_else(|e| e.into_inner());
        reg.services.get(service_id).map(|s| s.current.clone())
    }

    fn model(&self, model_id: &str, model_version: &str, party_id: &str) -> Option<Arc<Loaded>> {
        let reg = self.registry.read().unwrap_or_else(|e| e.into_inner());
        reg.models
            .get(&(model_id.into(), model_version.into(), party_id.into()))
            .cloned()
    }

    /// Keeps a loaded model (replacing the same model, version and party), at most
    /// [`MAX_LOADED`] of them.
    fn insert(&self, loaded: Loaded) -> Result<Arc<Loaded>, ApiError> {
        let loaded = Arc::new(loaded);
        let key = (
            loaded.model_id.clone(),
            loaded.model_version.clone(),
            loaded.party_id.clone(),
        );
        let mut reg = self.registry.write().unwrap_or_else(|e| e.into_inner());
        if !reg.models.contains_key(&key) && reg.models.len() >= MAX_LOADED {
            return Err(serving_error(
                code::LOAD_MODEL_ERROR,
                format!("this node already holds {MAX_LOADED} loaded models"),
            ));
        }
        reg.models.insert(key, loaded.clone());
        Ok(loaded)
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Metrics {
    requests: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<(&'static str, i64), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    rows: AtomicU64,
}

impl Metrics {
    fn record(&self, endpoint: &'static str, retcode: i64, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(endpoint)
            .or_default() += 1;
        if retcode != code::SUCCESS {
            *self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((endpoint, retcode))
                .or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        let mut lat = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = lat.entry(endpoint).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (c, le) in h.counts.iter_mut().zip(BUCKETS) {
            if secs <= *le {
                *c += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    fn prometheus(&self, serving: &Serving) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP fate_serving_requests_total Inference requests served, by endpoint."
        );
        let _ = writeln!(out, "# TYPE fate_serving_requests_total counter");
        for (e, n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "fate_serving_requests_total{{endpoint=\"{e}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP fate_serving_errors_total Inference requests answered with a non-zero retcode."
        );
        let _ = writeln!(out, "# TYPE fate_serving_errors_total counter");
        for ((e, c), n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "fate_serving_errors_total{{endpoint=\"{e}\",retcode=\"{c}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP fate_serving_request_duration_seconds Time to answer an inference request."
        );
        let _ = writeln!(
            out,
            "# TYPE fate_serving_request_duration_seconds histogram"
        );
        for (e, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (c, le) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "fate_serving_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"{le}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "fate_serving_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "fate_serving_request_duration_seconds_sum{{endpoint=\"{e}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "fate_serving_request_duration_seconds_count{{endpoint=\"{e}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(out, "# HELP fate_serving_rows_total Rows scored.");
        let _ = writeln!(out, "# TYPE fate_serving_rows_total counter");
        let _ = writeln!(
            out,
            "fate_serving_rows_total {}",
            self.rows.load(Ordering::Relaxed)
        );
        let reg = serving.registry.read().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP fate_serving_models_loaded Models loaded at this node."
        );
        let _ = writeln!(out, "# TYPE fate_serving_models_loaded gauge");
        let _ = writeln!(out, "fate_serving_models_loaded {}", reg.models.len());
        let _ = writeln!(
            out,
            "# HELP fate_serving_services Services bound at this node."
        );
        let _ = writeln!(out, "# TYPE fate_serving_services gauge");
        let _ = writeln!(out, "fate_serving_services {}", reg.services.len());
        out
    }
}

pub(crate) async fn metrics(State(st): State<Arc<ApiState>>) -> Response {
    let text = st.serving.metrics.prometheus(&st.serving);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Publishing

type ApiResult = Result<Envelope, ApiError>;

fn name_field(m: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    let v = crate::routes::req_str(m, field)?;
    fate_types::ids::check_name(field, &v).map_err(|e| ApiError::param(field, e))?;
    Ok(v)
}

fn opt_id_field(m: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => {
            let v = crate::routes::req_str(m, field)?;
            fate_types::ids::check_path_id(field, &v).map_err(|e| ApiError::param(field, e))?;
            Ok(Some(v))
        }
    }
}

fn serving_error(c: i64, message: impl Into<String>) -> ApiError {
    let mut e = Envelope::error(RetCode::InvalidParameter, message);
    e.code = c as i32;
    ApiError(e)
}

/// The parties of a job's DAG with `role`, in the DAG's order.
fn parties_of(parties: &Value, role: Role) -> Vec<String> {
    let mut out = Vec::new();
    for p in parties.as_array().into_iter().flatten() {
        if p.get("role").and_then(Value::as_str) != Some(role.as_str()) {
            continue;
        }
        match p.get("party_id") {
            Some(Value::Array(ids)) => {
                for id in ids {
                    match id {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(n) => out.push(n.to_string()),
                        _ => {}
                    }
                }
            }
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Number(n)) => out.push(n.to_string()),
            _ => {}
        }
    }
    out
}

/// What a load names.
struct LoadRequest {
    model_id: String,
    model_version: String,
    task_name: Option<String>,
    party_id: Option<String>,
}

fn load_request(m: &Map<String, Value>) -> Result<LoadRequest, ApiError> {
    Ok(LoadRequest {
        model_id: name_field(m, "model_id")?,
        model_version: name_field(m, "model_version")?,
        task_name: opt_id_field(m, "task_name")?,
        party_id: opt_id_field(m, "party_id")?,
    })
}

/// Loads this node's part of a model: finds the CoordinatedLR model the training job saved for
/// `party_id` (a hosted party), checks the job succeeded, reads the typed model and, at a
/// host, indexes its feature table. `from` is the guest asking (partner loads), checked against
/// the job's guest.
async fn load_local(
    st: &ApiState,
    req: &LoadRequest,
    from: Option<&str>,
) -> Result<Loaded, ApiError> {
    let Some(from) = from else {
        return load_found(st, req, None).await.map_err(LoadError::into_api);
    };
    // A partner learns nothing of this node's models, jobs or parties until it is known to be
    // the model's guest: every failure before that check is the same answer.
    match load_found(st, req, Some(from)).await {
        Err(LoadError::BeforeGuestCheck(_)) => Err(serving_error(
            code::MODEL_NULL,
            format!(
                "no model {} version {} that party {from} may load at this node",
                req.model_id, req.model_version
            ),
        )),
        other => other.map_err(LoadError::into_api),
    }
}

/// A failure of [`load_found`]: before the caller was checked to be the model's guest (what a
/// partner must not see), or after.
enum LoadError {
    BeforeGuestCheck(ApiError),
    After(ApiError),
}

impl LoadError {
    fn into_api(self) -> ApiError {
        match self {
            LoadError::BeforeGuestCheck(e) | LoadError::After(e) => e,
        }
    }
}

impl From<ApiError> for LoadError {
    fn from(e: ApiError) -> Self {
        LoadError::After(e)
    }
}

/// [`load_local`]'s work; its errors say whether they came before the guest check.
async fn load_found(
    st: &ApiState,
    req: &LoadRequest,
    from: Option<&str>,
) -> Result<Loaded, LoadError> {
    // Everything up to the guest check, whose failures a partner must not tell apart.
    let found: Result<_, ApiError> = async {
        let hosted = st.scheduler.hosted_party_ids();
        let party_id = match &req.party_id {
            Some(p) => {
                if !hosted.is_empty() && !hosted.contains(p) {
                    return Err(ApiError::param(
                        "party_id",
                        format!("party {p} is not hosted by this node (it hosts {hosted:?})"),
                    ));
                }
                p.clone()
            }
            None => hosted.first().cloned().ok_or_else(|| {
                ApiError::param("party_id", "is required on a node hosting every party")
            })?,
        };
        let store = st.scheduler.store();
        let mut found = None;
        for role in [Role::Guest, Role::Host] {
            let recs = store
                .models_by_model_id(&req.model_id, &req.model_version, role, &party_id)
                .await?;
            let recs: Vec<_> = recs
                .into_iter()
                .filter(|r| r.output_key == "output_model")
                .filter(|r| req.task_name.as_ref().is_none_or(|t| &r.task_name == t))
                .collect();
            if recs.is_empty() {
                continue;
            }
            if recs.len() > 1 && req.task_name.is_none() {
                let names: Vec<&str> = recs.iter().map(|r| r.task_name.as_str()).collect();
                return Err(ApiError::param(
                    "task_name",
                    format!(
                        "model {} {} has several tasks' models ({}): name one",
                        req.model_id,
                        req.model_version,
                        names.join(", ")
                    ),
                ));
            }
            found = recs.into_iter().next().map(|r| (role, r));
            break;
        }
        let Some((role, rec)) = found else {
            return Err(serving_error(
                code::MODEL_NULL,
                format!(
                    "no model {} version {}{} was saved for party {party_id} at this node",
                    req.model_id,
                    req.model_version,
                    req.task_name
                        .as_ref()
                        .map(|t| format!(" by task {t}"))
                        .unwrap_or_default()
                ),
            ));
        };
        let jobs = store
            .jobs(&JobFilter {
                job_id: Some(rec.job_id.clone()),
                role: Some(role),
                party_id: Some(party_id.clone()),
                ..Default::default()
            })
            .await?;
        let job = jobs.into_iter().next().ok_or_else(|| {
            serving_error(
                code::LOAD_MODEL_ERROR,
                format!("the job {} of the model is not at this node", rec.job_id),
            )
        })?;
        let guest = parties_of(&job.parties, Role::Guest)
            .into_iter()
            .next()
            .unwrap_or_default();
        if let Some(from) = from
            && from != guest
        {
            return Err(ApiError::new(
                RetCode::NoPermission,
                format!(
                    "party {from} is not the guest of the training job {} (its guest is {guest})",
                    rec.job_id
                ),
            ));
        }
        Ok((party_id, role, rec, job, guest))
    }
    .await;
    let (party_id, role, rec, job, guest) = found.map_err(LoadError::BeforeGuestCheck)?;
    if rec.component != "coordinated_lr" {
        return Err(LoadError::After(serving_error(
            code::LOAD_MODEL_ERROR,
            format!(
                "task {} is a {} model; serving supports coordinated_lr",
                rec.task_name, rec.component
            ),
        )));
    }
    if job.status != JobStatus::Success {
        return Err(LoadError::After(serving_error(
            code::LOAD_MODEL_ERROR,
            format!(
                "the training job {} has status {}; only a finished (success) job's model is served",
                rec.job_id, job.status
            ),
        )));
    }
    let model = LrModel::from_json(&rec.data, role == Role::Guest).map_err(|e| {
        serving_error(
            code::LOAD_MODEL_ERROR,
            format!("the model of task {}: {e}", rec.task_name),
        )
    })?;
    let features = if role == Role::Host {
        Some(feature_index(st, &rec.job_id, &party_id, &model).await?)
    } else {
        None
    };
    Ok(Loaded {
        model_id: req.model_id.clone(),
        model_version: req.model_version.clone(),
        job_id: rec.job_id.clone(),
        task_name: rec.task_name.clone(),
        role,
        party_id,
        guest,
        hosts: parties_of(&job.parties, Role::Host),
        model,
        features,
        loaded_at: fate_store::now_ms(),
    })
}

/// A host's feature adapter: the first table the training job wrote at this party whose
/// features are the model's (the host's side of the training data), indexed by match id.
async fn feature_index(
    st: &ApiState,
    job_id: &str,
    party_id: &str,
    model: &LrModel,
) -> Result<FeatureIndex, ApiError> {
    let store = st.scheduler.store();
    let outputs = store
        .output_data(job_id, Role::Host, party_id, None)
        .await?;
    for out in outputs {
        let Some(t) = store.table(&out.namespace, &out.name).await? else {
            continue;
        };
        let schema: fate_runtime::Schema = match serde_json::from_value(t.schema) {
            Ok(s) => s,
            Err(_) => continue,
        };
        if schema.feature_names != model.header() {
            continue;
        }
        let comp = st.scheduler.computing().clone();
        let (ns, name) = (out.namespace.clone(), out.name.clone());
        let rows =
            tokio::task::spawn_blocking(move || -> Result<HashMap<String, Vec<f64>>, String> {
                let table: fate_computing::Table<String, fate_runtime::Row> =
                    comp.load(&ns, &name).map_err(|e| e.to_string())?;
                Ok(table
                    .collect(MAX_FEATURE_ROWS)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|(_, r)| (r.match_id, r.features))
                    .collect())
            })
            .await
            .map_err(|e| serving_error(code::SYSTEM_ERROR, e.to_string()))?
            .map_err(|e| {
                serving_error(
                    code::LOAD_MODEL_ERROR,
                    format!("the feature table {}.{}: {e}", out.namespace, out.name),
                )
            })?;
        return Ok(FeatureIndex {
            table: format!("{}.{}", out.namespace, out.name),
            rows,
        });
    }
    Err(serving_error(
        code::LOAD_MODEL_ERROR,
        format!(
            "no table of the training job {job_id} at party {party_id} has the model's features; the host's feature adapter needs it"
        ),
    ))
}

fn loaded_json(l: &Loaded) -> Value {
    json!({
        "model_id": l.model_id,
        "model_version": l.model_version,
        "job_id": l.job_id,
        "task_name": l.task_name,
        "role": l.role.as_str(),
        "party_id": l.party_id,
        "guest": l.guest,
        "hosts": l.hosts,
        "classes": l.model.n_classes(),
        "features": l.model.n_features(),
        "feature_table": l.features.as_ref().map(|f| f.table.clone()),
        "feature_rows": l.features.as_ref().map(|f| f.rows.len()),
        "loaded_at": l.loaded_at,
    })
}

pub(crate) async fn load(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let req = load_request(&m)?;
    let loaded = load_local(&st, &req, None).await?;
    let mut hosts = Vec::new();
    if loaded.role == Role::Guest {
        // FATE's `flow model load` loads every party's part: each host loads its own.
        for host in &loaded.hosts {
            let body = json!({
                "model_id": req.model_id,
                "model_version": req.model_version,
                "task_name": loaded.task_name,
                "party_id": host,
            });
            let answer = st
                .scheduler
                .call_partner(host, paths::LOAD, body, Duration::from_secs(60))
                .await
                .map_err(|e| {
                    serving_error(
                        code::LOAD_MODEL_ERROR,
                        format!("host {host} did not load its part: {}", e.message),
                    )
                })?;
            hosts.push(answer);
        }
    }
    let loaded = st.serving.insert(loaded)?;
    tracing::info!(model_id = %loaded.model_id, model_version = %loaded.model_version, role = %loaded.role, "Model loaded for serving.");
    let mut v = loaded_json(&loaded);
    v["host_parts"] = json!(hosts);
    Ok(Envelope::ok(v))
}

pub(crate) async fn partner_load(
    State(st): State<Arc<ApiState>>,
    caller: Option<Extension<PartnerCaller>>,
    body: String,
) -> ApiResult {
    let from = crate::partner::src_party(caller)?;
    let m = body_json(&body)?;
    let req = load_request(&m)?;
    let loaded = load_local(&st, &req, Some(&from)).await?;
    if loaded.role != Role::Host {
        return Err(ApiError::param(
            "party_id",
            format!("party {} is not a host of the model", loaded.party_id),
        ));
    }
    let loaded = st.serving.insert(loaded)?;
    tracing::info!(model_id = %loaded.model_id, model_version = %loaded.model_version, guest = %from, "Host part of a model loaded for serving.");
    Ok(Envelope::ok(loaded_json(&loaded)))
}

pub(crate) async fn bind(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let service_id = name_field(&m, "service_id")?;
    let model_id = name_field(&m, "model_id")?;
    let model_version = name_field(&m, "model_version")?;
    let party_id = opt_id_field(&m, "party_id")?;
    let loaded = {
        let reg = st
            .serving
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner());
        reg.models
            .values()
            .find(|l| {
                l.model_id == model_id
                    && l.model_version == model_version
                    && l.role == Role::Guest
                    && party_id.as_ref().is_none_or(|p| &l.party_id == p)
            })
            .cloned()
    };
    let Some(loaded) = loaded else {
        return Err(serving_error(
            code::BIND_MODEL_ERROR,
            format!(
                "model {model_id} version {model_version} is not loaded as a guest model at this node; load it first (/v2/serving/model/load)"
            ),
        ));
    };
    let mut reg = st
        .serving
        .registry
        .write()
        .unwrap_or_else(|e| e.into_inner());
    let now = fate_store::now_ms();
    let previous = match reg.services.remove(&service_id) {
        Some(mut s) => {
            s.previous.push(s.current);
            if s.previous.len() > MAX_HISTORY {
                s.previous.remove(0);
            }
            s.previous
        }
        None => Vec::new(),
    };
    let prev = previous.last().map(|p| p.model_version.clone());
    reg.services.insert(
        service_id.clone(),
        Service {
            current: loaded,
            previous,
            bound_at: now,
        },
    );
    tracing::info!(%service_id, %model_id, %model_version, "Service bound.");
    Ok(Envelope::ok(json!({
        "service_id": service_id,
        "model_id": model_id,
        "model_version": model_version,
        "previous_version": prev,
    })))
}

pub(crate) async fn rollback(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let service_id = name_field(&m, "service_id")?;
    let mut reg = st
        .serving
        .registry
        .write()
        .unwrap_or_else(|e| e.into_inner());
    let Some(s) = reg.services.get_mut(&service_id) else {
        return Err(serving_error(
            code::SERVICE_NOT_FOUND,
            format!("service_id: no service {service_id} is bound at this node"),
        ));
    };
    let Some(prev) = s.previous.pop() else {
        return Err(serving_error(
            code::BIND_MODEL_ERROR,
            format!("service {service_id} has no previous binding to roll back to"),
        ));
    };
    let from = std::mem::replace(&mut s.current, prev);
    s.bound_at = fate_store::now_ms();
    tracing::info!(%service_id, from = %from.model_version, to = %s.current.model_version, "Service rolled back.");
    Ok(Envelope::ok(json!({
        "service_id": service_id,
        "model_id": s.current.model_id,
        "model_version": s.current.model_version,
        "rolled_back_from": from.model_version,
    })))
}

pub(crate) async fn query(
    State(st): State<Arc<ApiState>>,
    axum::extract::Query(p): axum::extract::Query<HashMap<String, String>>,
    body: String,
) -> ApiResult {
    let mut service_id = p.get("service_id").cloned();
    if service_id.is_none() && !body.trim().is_empty() {
        let m = body_json(&body)?;
        service_id = m
            .get("service_id")
            .and_then(Value::as_str)
            .map(String::from);
    }
    let reg = st
        .serving
        .registry
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let services: Vec<Value> = reg
        .services
        .iter()
        .filter(|(id, _)| service_id.as_ref().is_none_or(|s| s == *id))
        .map(|(id, s)| {
            json!({
                "service_id": id,
                "model_id": s.current.model_id,
                "model_version": s.current.model_version,
                "party_id": s.current.party_id,
                "hosts": s.current.hosts,
                "previous_versions": s.previous.iter().map(|p| p.model_version.clone()).collect::<Vec<_>>(),
                "bound_at": s.bound_at,
            })
        })
        .collect();
    if let Some(id) = &service_id
        && services.is_empty()
    {
        return Err(serving_error(
            code::SERVICE_NOT_FOUND,
            format!("service_id: no service {id} is bound at this node"),
        ));
    }
    let models: Vec<Value> = reg.models.values().map(|l| loaded_json(l)).collect();
    Ok(Envelope::ok(
        json!({"services": services, "models": models}),
    ))
}

// ---------------------------------------------------------------------------------------------
// Inference

/// A refusal in FATE-Serving's shape.
struct Refusal {
    retcode: i64,
    retmsg: String,
}

fn refuse(retcode: i64, retmsg: impl Into<String>) -> Refusal {
    Refusal {
        retcode,
        retmsg: retmsg.into(),
    }
}

/// One row to score: the guest's features in the model's order and what goes to the hosts.
struct Item {
    x: Vec<f64>,
    remote: Value,
}

fn item(v: &Value, at: &str, model: &LrModel) -> Result<Item, Refusal> {
    let features = match v.get("featureData") {
        Some(Value::Object(f)) => f,
        Some(_) => {
            return Err(refuse(
                code::PARAM_ERROR,
                format!("{at}.featureData must be an object of feature name to number"),
            ));
        }
        None => {
            return Err(refuse(
                code::PARAM_ERROR,
                format!("{at}.featureData is required"),
            ));
        }
    };
    let mut x = Vec::with_capacity(model.n_features());
    for name in model.header() {
        let value = match features.get(name) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            None => {
                return Err(refuse(
                    code::FEATURE_ERROR,
                    format!(
                        "{at}.featureData.{name} is missing (the model's features: {})",
                        model.header().join(",")
                    ),
                ));
            }
            _ => None,
        };
        match value {
            Some(f) if f.is_finite() => x.push(f),
            _ => {
                return Err(refuse(
                    code::FEATURE_ERROR,
                    format!("{at}.featureData.{name} is not a finite number"),
                ));
            }
        }
    }
    let remote = match v.get("sendToRemoteFeatureData") {
        Some(Value::Object(r)) => {
            match r.get("id") {
                Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => {}
                Some(Value::Number(_)) => {}
                _ => {
                    return Err(refuse(
                        code::PARAM_ERROR,
                        format!(
                            "{at}.sendToRemoteFeatureData.id is required (a string of at most 256 characters or a number): the hosts look their features up by it"
                        ),
                    ));
                }
            }
            Value::Object(r.clone())
        }
        Some(_) => {
            return Err(refuse(
                code::PARAM_ERROR,
                format!("{at}.sendToRemoteFeatureData must be an object with an id"),
            ));
        }
        None => {
            return Err(refuse(
                code::PARAM_ERROR,
                format!("{at}.sendToRemoteFeatureData is required"),
            ));
        }
    };
    Ok(Item { x, remote })
}

fn service_of(req: &Value) -> Result<String, Refusal> {
    match req.get("head").and_then(|h| h.get("serviceId")) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(refuse(
            code::PARAM_ERROR,
            "head.serviceId must be a non-empty string",
        )),
        None => Err(refuse(code::PARAM_ERROR, "head.serviceId is required")),
    }
}

fn parse_request(body: &str) -> Result<Value, Refusal> {
    match serde_json::from_str::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(refuse(code::PARAM_ERROR, "body: expected a JSON object")),
        Err(e) => Err(refuse(
            code::PARAM_ERROR,
            format!("body: malformed JSON: {e}"),
        )),
    }
}

fn trace_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Per host, per item: its partial scores, or the refusal.
type HostParts = Vec<Result<Vec<f64>, Refusal>>;

/// Asks every host of the model for its partial scores of `items` concurrently, each within
/// the deadline. A host that fails fails every item, naming it.
async fn host_parts(
    st: &Arc<ApiState>,
    loaded: &Arc<Loaded>,
    items: &[&Item],
    trace: &str,
) -> Vec<Result<HostParts, Refusal>> {
    let deadline = st.serving.host_deadline;
    let mut calls = Vec::new();
    for host in &loaded.hosts {
        let body = json!({
            "model_id": loaded.model_id,
            "model_version": loaded.model_version,
            "party_id": host,
            "trace_id": trace,
            "items": items.iter().map(|i| i.remote.clone()).collect::<Vec<_>>(),
        });
        let st = st.clone();
        let host = host.clone();
        let n = items.len();
        let classes = loaded.model.n_classes();
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let answer = tokio::time::timeout(
                deadline + Duration::from_millis(200),
                st.scheduler
                    .call_partner(&host, paths::INFERENCE, body, deadline),
            )
            .await;
            let v = match answer {
                Err(_) => {
                    return Err(refuse(
                        code::NET_ERROR,
                        format!(
                            "host {host} did not answer within {} ms",
                            deadline.as_millis()
                        ),
                    ));
                }
                Ok(Err(e)) if e.code.is_some() => {
                    return Err(refuse(
                        code::MODEL_NULL,
                        format!("host {host} refused: {}", e.message),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(refuse(
                        code::NET_ERROR,
                        format!(
                            "host {host} not reached within {} ms ({} ms spent): {}",
                            deadline.as_millis(),
                            started.elapsed().as_millis(),
                            e.message
                        ),
                    ));
                }
                Ok(Ok(v)) => v,
            };
            let results = v
                .get("results")
                .and_then(Value::as_array)
                .filter(|a| a.len() == n)
                .ok_or_else(|| {
                    refuse(
                        code::SYSTEM_ERROR,
                        format!("host {host} answered {n} items with a malformed reply"),
                    )
                })?;
            Ok(results
                .iter()
                .map(|r| match r.get("partial").and_then(Value::as_array) {
                    Some(p) => {
                        let p: Option<Vec<f64>> = p.iter().map(Value::as_f64).collect();
                        match p {
                            Some(p) if p.len() == classes && p.iter().all(|x| x.is_finite()) => {
                                Ok(p)
                            }
                            _ => Err(refuse(
                                code::SYSTEM_ERROR,
                                format!("host {host} sent a malformed partial score"),
                            )),
                        }
                    }
                    None => Err(refuse(
                        r.get("retcode")
                            .and_then(Value::as_i64)
                            .unwrap_or(code::SYSTEM_ERROR),
                        format!(
                            "host {host}: {}",
                            r.get("retmsg")
                                .and_then(Value::as_str)
                                .unwrap_or("no partial score")
                        ),
                    )),
                })
                .collect())
        }));
    }
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap_or_else(|e| {
            Err(refuse(
                code::SYSTEM_ERROR,
                format!("host call ended abnormally: {e}"),
            ))
        }));
    }
    out
}

/// Scores items against one bound model (the same `Arc` for every item of the request).
async fn score(
    st: &Arc<ApiState>,
    loaded: &Arc<Loaded>,
    items: Vec<Result<Item, Refusal>>,
    trace: &str,
) -> Vec<Result<fate_ml::lr::Prediction, Refusal>> {
    let ok: Vec<&Item> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
    let parts = if ok.is_empty() {
        Vec::new()
    } else {
        host_parts(st, loaded, &ok, trace).await
    };
    let mut out = Vec::with_capacity(items.len());
    let mut k = 0;
    for it in items {
        let it = match it {
            Ok(it) => it,
            Err(r) => {
                out.push(Err(r));
                continue;
            }
        };
        let guest = loaded.model.guest_linear(&it.x);
        let mut hosts: Vec<&[f64]> = Vec::with_capacity(parts.len());
        let mut failed = None;
        for p in &parts {
            match p {
                Err(r) => {
                    failed = Some(refuse(r.retcode, r.retmsg.clone()));
                    break;
                }
                Ok(items) => match &items[k] {
                    Ok(v) => hosts.push(v),
                    Err(r) => {
                        failed = Some(refuse(r.retcode, r.retmsg.clone()));
                        break;
                    }
                },
            }
        }
        k += 1;
        out.push(match failed {
            Some(r) => Err(r),
            None => Ok(loaded.model.predict(&guest, &hosts)),
        });
    }
    out
}

fn prediction_json(p: &fate_ml::lr::Prediction, loaded: &Loaded, now: i64) -> Value {
    let mut d = json!({
        "score": p.score,
        "label": p.label,
        "modelId": loaded.model_id,
        "modelVersion": loaded.model_version,
        "timestamp": now,
    });
    if loaded.model.ovr {
        d["probabilities"] = json!(
            loaded
                .model
                .labels
                .iter()
                .zip(&p.probs)
                .map(|(l, pr)| (l.to_string(), json!(pr)))
                .collect::<Map<String, Value>>()
        );
    }
    d
}

fn serving_answer(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn refusal_answer(r: &Refusal, model: Option<&Loaded>, now: i64) -> Value {
    json!({
        "retcode": r.retcode,
        "retmsg": r.retmsg,
        "data": {},
        "modelId": model.map(|m| m.model_id.clone()),
        "modelVersion": model.map(|m| m.model_version.clone()),
        "timestamp": now,
        "flag": 0,
    })
}

/// `POST /federation/v1/inference`.
pub(crate) async fn inference(State(st): State<Arc<ApiState>>, body: String) -> Response {
    let started = Instant::now();
    let trace = trace_id();
    let (v, retcode) = inference_inner(&st, &body, &trace).await;
    st.serving
        .metrics
        .record("inference", retcode, started.elapsed());
    if retcode != code::SUCCESS {
        tracing::info!(%trace, retcode, retmsg = %v["retmsg"], "Inference refused.");
    }
    serving_answer(v)
}

async fn inference_inner(st: &Arc<ApiState>, body: &str, trace: &str) -> (Value, i64) {
    let now = fate_store::now_ms();
    let req = match parse_request(body) {
        Ok(r) => r,
        Err(r) => return (refusal_answer(&r, None, now), r.retcode),
    };
    let service = match service_of(&req) {
        Ok(s) => s,
        Err(r) => return (refusal_answer(&r, None, now), r.retcode),
    };
    // One Arc for the whole request: a concurrent bind or rollback cannot mix versions.
    let Some(loaded) = st.serving.bound(&service) else {
        let r = refuse(
            code::SERVICE_NOT_FOUND,
            format!("head.serviceId: no service {service} is bound at this node"),
        );
        return (refusal_answer(&r, None, now), r.retcode);
    };
    let Some(b) = req.get("body") else {
        let r = refuse(
            code::PARAM_ERROR,
            "body.featureData is required (the request has no body)",
        );
        return (refusal_answer(&r, Some(loaded.as_ref()), now), r.retcode);
    };
    let it = item(b, "body", &loaded.model);
    let mut res = score(st, &loaded, vec![it], trace).await;
    st.serving.metrics.rows.fetch_add(1, Ordering::Relaxed);
    match res.pop() {
        Some(Ok(p)) => (
            json!({
                "retcode": code::SUCCESS,
                "retmsg": "",
                "data": prediction_json(&p, &loaded, now),
                "modelId": loaded.model_id,
                "modelVersion": loaded.model_version,
                "timestamp": now,
                "flag": 0,
            }),
            code::SUCCESS,
        ),
        Some(Err(r)) => (refusal_answer(&r, Some(loaded.as_ref()), now), r.retcode),
        None => {
            let r = refuse(code::SYSTEM_ERROR, "no result");
            (refusal_answer(&r, Some(loaded.as_ref()), now), r.retcode)
        }
    }
}

/// `POST /federation/v1/batchInference`: `body.batchDataList` of `{index, featureData,
/// sendToRemoteFeatureData}`; the answer's `batchDataList` has each item's `index`,
/// `retcode`, `retmsg` and `data`.
pub(crate) async fn batch_inference(State(st): State<Arc<ApiState>>, body: String) -> Response {
    let started = Instant::now();
    let trace = trace_id();
    let (v, retcode) = batch_inner(&st, &body, &trace).await;
    st.serving
        .metrics
        .record("batchInference", retcode, started.elapsed());
    if retcode != code::SUCCESS {
        tracing::info!(%trace, retcode, retmsg = %v["retmsg"], "Batch inference refused.");
    }
    serving_answer(v)
}

async fn batch_inner(st: &Arc<ApiState>, body: &str, trace: &str) -> (Value, i64) {
    let now = fate_store::now_ms();
    let req = match parse_request(body) {
        Ok(r) => r,
        Err(r) => return (refusal_answer(&r, None, now), r.retcode),
    };
    let service = match service_of(&req) {
        Ok(s) => s,
        Err(r) => return (refusal_answer(&r, None, now), r.retcode),
    };
    let Some(loaded) = st.serving.bound(&service) else {
        let r = refuse(
            code::SERVICE_NOT_FOUND,
            format!("head.serviceId: no service {service} is bound at this node"),
        );
        return (refusal_answer(&r, None, now), r.retcode);
    };
    let list = match req.get("body").and_then(|b| b.get("batchDataList")) {
        Some(Value::Array(a)) => a,
        Some(_) => {
            let r = refuse(code::PARAM_ERROR, "body.batchDataList must be a list");
            return (refusal_answer(&r, Some(loaded.as_ref()), now), r.retcode);
        }
        None => {
            let r = refuse(code::PARAM_ERROR, "body.batchDataList is required");
            return (refusal_answer(&r, Some(loaded.as_ref()), now), r.retcode);
        }
    };
    if list.is_empty() || list.len() > MAX_BATCH {
        let r = refuse(
            code::PARAM_ERROR,
            format!(
                "body.batchDataList has {} items; a batch holds 1 to {MAX_BATCH}",
                list.len()
            ),
        );
        return (refusal_answer(&r, Some(loaded.as_ref()), now), r.retcode);
    }
    let mut indexes = Vec::with_capacity(list.len());
    let mut items = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("body.batchDataList[{i}]");
        indexes.push(entry.get("index").cloned().unwrap_or(json!(i)));
        items.push(if entry.is_object() {
            item(entry, &at, &loaded.model)
        } else {
            Err(refuse(code::PARAM_ERROR, format!("{at} must be an object")))
        });
    }
    let results = score(st, &loaded, items, trace).await;
    st.serving
        .metrics
        .rows
        .fetch_add(results.len() as u64, Ordering::Relaxed);
    let mut failed = 0;
    let out: Vec<Value> = indexes
        .into_iter()
        .zip(results)
        .map(|(index, r)| match r {
            Ok(p) => json!({"index": index, "retcode": 0, "retmsg": "", "data": prediction_json(&p, &loaded, now)}),
            Err(r) => {
                failed += 1;
                json!({"index": index, "retcode": r.retcode, "retmsg": r.retmsg, "data": {}})
            }
        })
        .collect();
    let (retcode, retmsg) = if failed == 0 {
        (code::SUCCESS, String::new())
    } else {
        let first = out
            .iter()
            .find(|o| o["retcode"] != 0)
            .map(|o| {
                (
                    o["retcode"].as_i64().unwrap_or(code::SYSTEM_ERROR),
                    o["retmsg"].as_str().unwrap_or("").to_string(),
                )
            })
            .unwrap_or((code::SYSTEM_ERROR, String::new()));
        (
            first.0,
            format!(
                "{failed} of {} items failed; the first: {}",
                out.len(),
                first.1
            ),
        )
    };
    (
        json!({
            "retcode": retcode,
            "retmsg": retmsg,
            "batchDataList": out,
            "modelId": loaded.model_id,
            "modelVersion": loaded.model_version,
            "timestamp": now,
            "flag": 0,
        }),
        retcode,
    )
}

/// `/v2/partner/serving/inference` at a host: partial scores `X_h·w_h` for the ids the guest
/// sent, from this host's feature adapter. Only the model's guest is answered.
pub(crate) async fn partner_inference(
    State(st): State<Arc<ApiState>>,
    caller: Option<Extension<PartnerCaller>>,
    body: String,
) -> ApiResult {
    let started = Instant::now();
    let from = crate::partner::src_party(caller)?;
    let m = body_json(&body)?;
    let model_id = name_field(&m, "model_id")?;
    let model_version = name_field(&m, "model_version")?;
    let party_id = crate::routes::req_str(&m, "party_id")?;
    let trace = m.get("trace_id").and_then(Value::as_str).unwrap_or("");
    let items = match m.get("items") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_BATCH => a,
        _ => {
            return Err(ApiError::param(
                "items",
                format!("must be a list of 1 to {MAX_BATCH} objects with an id"),
            ));
        }
    };
    // Not loaded, or loaded for another guest: one answer, so a partner that is not the
    // model's guest learns nothing of what this host serves.
    let Some(loaded) = st
        .serving
        .model(&model_id, &model_version, &party_id)
        .filter(|l| l.guest == from)
    else {
        return Err(serving_error(
            code::MODEL_NULL,
            format!(
                "model {model_id} version {model_version} is not loaded at this host for party \
                 {party_id} and guest {from}"
            ),
        ));
    };
    let Some(features) = &loaded.features else {
        return Err(serving_error(
            code::MODEL_NULL,
            "the model has no host part here",
        ));
    };
    let results: Vec<Value> = items
        .iter()
        .map(|it| {
            let id = match it.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return json!({"retcode": code::PARAM_ERROR, "retmsg": "sendToRemoteFeatureData.id is missing"}),
            };
            match features.rows.get(&id) {
                Some(x) if x.len() == loaded.model.n_features() => {
                    json!({"partial": loaded.model.host_partials(x)})
                }
                Some(_) => json!({"retcode": code::FEATURE_ERROR, "retmsg": format!("the features of id {id} do not match the model")}),
                None => json!({"retcode": code::HOST_FEATURE_NOT_EXIST, "retmsg": format!("no features for id {id} in {}", features.table)}),
            }
        })
        .collect();
    st.serving
        .metrics
        .record("partnerInference", code::SUCCESS, started.elapsed());
    tracing::debug!(%trace, guest = %from, n = results.len(), "Partial scores served.");
    Ok(Envelope::ok(json!({"results": results})))
}
