//! App and permission management (fate-spec §3.4 `/app/*`, `/permission/*`;
//! `fate_flow/apps/client/permission_app.py`, `app_app.py`). With client authentication on,
//! only apps with the `super_client` role reach these handlers (`auth::require`).
//!
//! * `/v2/app/client/{create,delete,query}`: apps that may call this node, with their tokens.
//! * `/v2/permission/{grant,delete,query,role/query}`: the roles of an app.
//! * `/v2/permission/resource/{grant,delete,query}`: site permissions, which components and
//!   which datasets (tables) a partner party may use in the jobs it creates here (enforced when
//!   the node runs with site permissions on; `fate_scheduler::Site::permission`).
//!
//! FATE's site and partner apps (`/v2/app/site/*`, `/v2/app/partner/*`) sign calls between
//! FATE-Flows. fate-rs identifies partners by the mutual-TLS certificate their router presented
//! instead, so those endpoints answer 6001 (function restricted) naming why.

use crate::auth::{self, ROLES};
use crate::envelope::{ApiError, Envelope};
use crate::routes::{ApiState, body_json, req_str};
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use fate_store::SitePermission;
use fate_types::RetCode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type ApiResult = Result<Envelope, ApiError>;
type Params = Query<HashMap<String, String>>;

/// Site permission kinds (FATE's `PermissionType`).
pub const COMPONENT: &str = "component";
pub const DATASET: &str = "dataset";

pub(crate) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v2/app/client/create", post(client_create))
        .route("/v2/app/client/delete", post(client_delete))
        .route("/v2/app/client/query", get(client_query))
        .route("/v2/app/site/create", post(site_apps))
        .route("/v2/app/site/delete", post(site_apps))
        .route("/v2/app/site/query", get(site_query))
        .route("/v2/app/partner/create", post(site_apps))
        .route("/v2/app/partner/delete", post(site_apps))
        .route("/v2/app/partner/query", get(site_query))
        .route("/v2/permission/grant", post(role_grant))
        .route("/v2/permission/delete", post(role_delete))
        .route("/v2/permission/query", get(role_query))
        .route("/v2/permission/role/query", get(roles))
        .route("/v2/permission/resource/grant", post(resource_grant))
        .route("/v2/permission/resource/delete", post(resource_delete))
        .route("/v2/permission/resource/query", get(resource_query))
}

fn app_json(a: &fate_store::AppRecord, with_token: bool) -> Value {
    let mut v = json!({
        "app_id": a.app_id,
        "app_name": a.app_name,
        "app_type": a.app_type,
        "create_time": a.create_time,
    });
    if with_token {
        v["app_token"] = json!(a.app_token);
    }
    v
}

fn name_param(field: &str, value: &str) -> Result<(), ApiError> {
    fate_types::check_name(field, value).map_err(|e| ApiError::param(field, e.reason))
}

async fn client_create(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let app_name = req_str(&m, "app_name")?;
    name_param("app_name", &app_name)?;
    let store = st.scheduler.store();
    if !store.apps(None, Some(&app_name)).await?.is_empty() {
        return Err(ApiError::param(
            "app_name",
            format!("an app named {app_name} exists already"),
        ));
    }
    let app = auth::new_app(&app_name, fate_store::now_ms());
    store.create_app(&app).await?;
    store.grant_role(&app.app_id, auth::ROLE_CLIENT).await?;
    tracing::info!(app_id = %app.app_id, %app_name, "App created.");
    Ok(Envelope::ok(app_json(&app, true)))
}

async fn client_delete(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let app_id = req_str(&m, "app_id")?;
    if !st.scheduler.store().delete_app(&app_id).await? {
        return Err(ApiError::new(
            RetCode::NoFoundAppId,
            format!("No found appid: app_id[{app_id}]"),
        ));
    }
    tracing::info!(%app_id, "App deleted.");
    Ok(Envelope::ok(json!({"app_id": app_id})))
}

async fn client_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let app_id = p.get("app_id").filter(|s| !s.is_empty());
    let app_name = p.get("app_name").filter(|s| !s.is_empty());
    let apps = st
        .scheduler
        .store()
        .apps(app_id.map(String::as_str), app_name.map(String::as_str))
        .await?;
    // Tokens are shown to whoever may manage apps, as FATE's query does: they are needed to
    // configure a client.
    Ok(Envelope::ok(
        apps.iter().map(|a| app_json(a, true)).collect::<Vec<_>>(),
    ))
}

/// `GET /v2/app/site/query` and `/v2/app/partner/query` (FATE-Flow client_app.py): the site
/// and partner apps. fate-rs keeps none (partners are known by their certificates), so the
/// list is empty, as FATE's is before any is created.
async fn site_query() -> ApiResult {
    Ok(Envelope::ok(json!([])))
}

async fn site_apps() -> ApiResult {
    Err(ApiError::fate(
        6001,
        "Function restricted: fate-rs identifies partner sites by the mutual-TLS certificate \
         their router presented, not by site or partner app tokens; configure tls in node.yaml \
         and router.yaml instead",
        &[],
    ))
}

fn role_param(m: &Map<String, Value>) -> Result<String, ApiError> {
    let role = req_str(m, "role")?;
    if !ROLES.contains(&role.as_str()) {
        return Err(ApiError::param(
            "role",
            format!("{role:?} is not a role; roles are {}", ROLES.join(", ")),
        ));
    }
    Ok(role)
}

async fn existing_app(st: &ApiState, app_id: &str) -> Result<(), ApiError> {
    if st.scheduler.store().app(app_id).await?.is_none() {
        return Err(ApiError::new(
            RetCode::NoFoundAppId,
            format!("No found appid: app_id[{app_id}]"),
        ));
    }
    Ok(())
}

async fn role_grant(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let app_id = req_str(&m, "app_id")?;
    let role = role_param(&m)?;
    existing_app(&st, &app_id).await?;
    st.scheduler.store().grant_role(&app_id, &role).await?;
    tracing::info!(%app_id, %role, "Role granted.");
    Ok(Envelope::ok(json!({"app_id": app_id, "role": role})))
}

async fn role_delete(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let app_id = req_str(&m, "app_id")?;
    let role = role_param(&m)?;
    existing_app(&st, &app_id).await?;
    if !st.scheduler.store().revoke_role(&app_id, &role).await? {
        return Err(ApiError::new(
            RetCode::PermissionOperate,
            format!("Permission Operate Error: app {app_id} does not have the role {role}"),
        ));
    }
    tracing::info!(%app_id, %role, "Role deleted.");
    Ok(Envelope::ok(json!({"app_id": app_id, "role": role})))
}

async fn role_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let app_id = p
        .get("app_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::param("app_id", "is required"))?;
    existing_app(&st, app_id).await?;
    let roles = st.scheduler.store().roles(app_id).await?;
    Ok(Envelope::ok(json!({"app_id": app_id, "roles": roles})))
}

async fn roles() -> ApiResult {
    Ok(Envelope::ok(ROLES))
}

/// The permissions a resource grant or delete names: `component` is `"a,b"` or `"*"`, `dataset`
/// one `{namespace, name}`, a list of them, or `"*"`.
fn resource_values(m: &Map<String, Value>) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut out = Vec::new();
    match m.get(COMPONENT) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            for c in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if c != "*" {
                    fate_types::check_path_id(COMPONENT, c)
                        .map_err(|e| ApiError::param(COMPONENT, e.reason))?;
                }
                out.push((COMPONENT, c.to_string()));
            }
        }
        Some(_) => {
            return Err(ApiError::param(
                COMPONENT,
                "must be component names separated by commas, or \"*\"",
            ));
        }
    }
    let one = |v: &Value| -> Result<String, ApiError> {
        let o = v.as_object().ok_or_else(|| {
            ApiError::param(
                DATASET,
                "each dataset must be {\"namespace\": ..., \"name\": ...}",
            )
        })?;
        let namespace = req_str(o, "namespace")?;
        let name = req_str(o, "name")?;
        name_param("dataset.namespace", &namespace)?;
        name_param("dataset.name", &name)?;
        Ok(dataset_value(&namespace, &name))
    };
    match m.get(DATASET) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "*" => out.push((DATASET, "*".into())),
        Some(Value::Array(a)) => {
            for v in a {
                out.push((DATASET, one(v)?));
            }
        }
        Some(v @ Value::Object(_)) => out.push((DATASET, one(v)?)),
        Some(_) => {
            return Err(ApiError::param(
                DATASET,
                "must be {namespace, name}, a list of them, or \"*\"",
            ));
        }
    }
    if out.is_empty() {
        return Err(ApiError::param(
            "component",
            "name a component or a dataset to grant or delete",
        ));
    }
    Ok(out)
}

/// How a dataset permission is stored: `namespace|name` (`|` never occurs in either).
pub fn dataset_value(namespace: &str, name: &str) -> String {
    format!("{namespace}|{name}")
}

fn party_param(m: &Map<String, Value>) -> Result<String, ApiError> {
    let party_id = req_str(m, "party_id")?;
    fate_types::check_path_id("party_id", &party_id)
        .map_err(|e| ApiError::param("party_id", e.reason))?;
    Ok(party_id)
}

async fn resource_grant(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let party_id = party_param(&m)?;
    let values = resource_values(&m)?;
    for (kind, value) in &values {
        st.scheduler
            .store()
            .grant_site_permission(&SitePermission {
                party_id: party_id.clone(),
                kind: (*kind).to_string(),
                value: value.clone(),
            })
            .await?;
    }
    tracing::info!(%party_id, granted = values.len(), "Site permissions granted.");
    resource_answer(&st, &party_id).await
}

async fn resource_delete(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let party_id = party_param(&m)?;
    let values = resource_values(&m)?;
    for (kind, value) in &values {
        // "*" deletes every permission of that kind (FATE: delete_all).
        let one = (value != "*").then_some(value.as_str());
        st.scheduler
            .store()
            .delete_site_permissions(&party_id, kind, one)
            .await?;
    }
    tracing::info!(%party_id, "Site permissions deleted.");
    resource_answer(&st, &party_id).await
}

async fn resource_query(State(st): State<Arc<ApiState>>, Query(p): Params) -> ApiResult {
    let party_id = p
        .get("party_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::param("party_id", "is required"))?;
    resource_answer(&st, party_id).await
}

async fn resource_answer(st: &ApiState, party_id: &str) -> ApiResult {
    let mut components = Vec::new();
    let mut datasets = Vec::new();
    for p in st.scheduler.store().site_permissions(party_id).await? {
        if p.kind == COMPONENT {
            components.push(json!(p.value));
        } else if p.kind == DATASET {
            match p.value.split_once('|') {
                Some((namespace, name)) => {
                    datasets.push(json!({"namespace": namespace, "name": name}))
                }
                None => datasets.push(json!(p.value)),
            }
        }
    }
    Ok(Envelope::ok(json!({
        "party_id": party_id,
        COMPONENT: components,
        DATASET: datasets,
    })))
}
