//! Model files (fate-spec §3.4 `/output/model/download`, `/model/export`, `/model/import`) in
//! FATE-Flow 2.2's formats (`python/fate_flow/manager/outputs/model/`, `apps/client/model_app.py`,
//! `apps/client/output_app.py`):
//!
//! * A model *package* is what one output key of one task holds at one party: a tar of the model
//!   file `json_model` (FATE 2.2's JSON model artifact type, which is also the file name a FATE
//!   worker writes under `<output_key>/`) and `json_model.meta.yaml`, FATE's artifact `Metadata`
//!   (model_key, type_name, index, source {task_id, party_task_id, task_name, component,
//!   output_artifact_key, output_index}, ...).
//! * `GET /output/model/download` answers the package of a task as `application/x-tar`;
//!   fate_client extracts it into `output_model_<job>_<role>_<party>_<task>/`. FATE sends only the
//!   first output key's package; for a task with several model outputs we send each under
//!   `<output_key>/` instead, so none is lost.
//! * `POST /model/export` writes `<path>/<model_id>_<model_version>_<role>_<party_id>.zip` on
//!   the node: one package per entry, named by FATE's storage key
//!   `<model_id>/<model_version>/<role>/<party_id>/<task_name>/<output_key>`.
//! * `POST /model/import` (multipart: model_id, model_version, file) reads such a zip and stores
//!   every package under the given model id and version, with role, party, task and output key
//!   from the entry names (FATE's `PipelinedModel.import_model`). A predict job then finds the
//!   models through `model_warehouse` like those of a train job.

use super::{ApiResult, ApiState, Params, body_json, opt_param, opt_role, req_str};
use crate::envelope::{ApiError, Envelope};
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fate_store::{ModelRecord, TaskFilter, TaskRecord};
use fate_types::{RetCode, Role};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// FATE-Flow's `Task.NO_FOUND_MODEL_OUTPUT` ("No found output model").
const NO_FOUND_MODEL_OUTPUT: i32 = 2005;
/// FATE 2.2's JSON model artifact type; the model file's name in a package (its `model_key`).
const MODEL_KEY: &str = "json_model";
/// Largest model archive `/model/import` accepts, and the most one entry may inflate to.
pub(super) const IMPORT_LIMIT: usize = 256 << 20;
/// Most entries read from an imported zip or from one package in it.
const MAX_ENTRIES: usize = 10_000;
/// Most bytes all entries of an imported zip may inflate to.
const MAX_INFLATED: u64 = 1 << 30;
/// Lengths of the t_model columns the imported names go to.
const MAX_ID: usize = 64;
const MAX_NAME: usize = 128;
const MAX_MODEL_ID: usize = 255;

fn server(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(RetCode::ServerError, e.to_string())
}

/// A tar of `(path, bytes)` files, each readable by its owner and others, dated now.
pub(super) fn tar_of(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mtime = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_cksum();
        b.append_data(&mut h, path, bytes.as_slice())?;
    }
    b.into_inner()
}

/// The files of one model's package: the JSON model and FATE's artifact metadata.
fn package_files(m: &ModelRecord) -> Result<Vec<(String, Vec<u8>)>, String> {
    let task_id = TaskRecord::fate_task_id(&m.job_id, &m.task_name);
    let meta = json!({
        "metadata": {},
        "model_overview": {},
        "name": null,
        "namespace": null,
        "data_overview": null,
        "source": {
            "task_id": task_id,
            "party_task_id": format!("{task_id}_{}_{}", m.role, m.party_id),
            "task_name": m.task_name,
            "component": m.component,
            "output_artifact_key": m.output_key,
            "output_index": null,
        },
        "model_key": MODEL_KEY,
        "type_name": MODEL_KEY,
        "index": null,
    });
    let meta = serde_yaml_ng::to_string(&meta).map_err(|e| e.to_string())?;
    let model = serde_json::to_vec(&m.data).map_err(|e| e.to_string())?;
    Ok(vec![
        (MODEL_KEY.to_string(), model),
        (format!("{MODEL_KEY}.meta.yaml"), meta.into_bytes()),
    ])
}

/// What an imported package holds.
#[derive(Debug)]
struct Package {
    component: String,
    data: Value,
}

/// Reads a package (a tar of `<model_key>` and `<model_key>.meta.yaml`). `what` names the zip
/// entry in errors.
fn read_package(bytes: &[u8], what: &str) -> Result<Package, String> {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut ar = tar::Archive::new(bytes);
    for entry in ar
        .entries()
        .map_err(|e| format!("{what}: not a tar: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("{what}: not a tar: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        if files.len() >= MAX_ENTRIES {
            return Err(format!("{what}: more than {MAX_ENTRIES} files"));
        }
        let path = entry
            .path()
            .map_err(|e| format!("{what}: bad file name: {e}"))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        // The tar lies inside a zip entry already bounded by IMPORT_LIMIT.
        let mut buf = Vec::new();
        entry
            .read_to_end(&mut buf)
            .map_err(|e| format!("{what}: {path}: {e}"))?;
        files.insert(path, buf);
    }
    let metas: Vec<&String> = files.keys().filter(|k| k.ends_with(".meta.yaml")).collect();
    let meta_name = match metas.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(format!(
                "{what}: no `*.meta.yaml` model metadata in the package"
            ));
        }
        _ => {
            return Err(format!(
                "{what}: {} models in one package; fate-rs stores one JSON model per output key",
                metas.len()
            ));
        }
    };
    let meta: Value = serde_yaml_ng::from_slice(&files[&meta_name])
        .map_err(|e| format!("{what}: {meta_name}: {e}"))?;
    let field = |k: &str| meta.get(k).and_then(Value::as_str);
    if let Some(t) = field("type_name").filter(|t| *t != MODEL_KEY) {
        return Err(format!(
            "{what}: {meta_name}: type_name `{t}` is not supported; fate-rs models are `{MODEL_KEY}`"
        ));
    }
    let model_key =
        field("model_key").ok_or_else(|| format!("{what}: {meta_name}: model_key is missing"))?;
    let component = meta
        .get("source")
        .and_then(|s| s.get("component"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty() && c.len() <= MAX_NAME)
        .ok_or_else(|| format!("{what}: {meta_name}: source.component is missing"))?
        .to_string();
    let model = files
        .get(model_key)
        .ok_or_else(|| format!("{what}: the model file `{model_key}` is missing"))?;
    let data =
        serde_json::from_slice(model).map_err(|e| format!("{what}: {model_key}: not JSON: {e}"))?;
    Ok(Package { component, data })
}

/// One model read from an imported zip.
#[derive(Debug)]
struct Imported {
    role: Role,
    party_id: String,
    task_name: String,
    output_key: String,
    package: Package,
}

/// Reads a model zip as `/model/export` writes it. Every entry is checked before anything is
/// stored, so a bad archive changes nothing.
fn read_zip(bytes: &[u8]) -> Result<Vec<Imported>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a zip archive: {e}"))?;
    if zip.len() > MAX_ENTRIES {
        return Err(format!("{} entries, at most {MAX_ENTRIES}", zip.len()));
    }
    let mut inflated = 0u64;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        if f.is_dir() {
            continue;
        }
        let name = f
            .name()
            .map_err(|e| format!("entry {i}: bad name: {e}"))?
            .to_string();
        let path = f
            .enclosed_name()
            .ok_or_else(|| format!("entry `{name}`: unsafe path"))?;
        // FATE's storage key: <model_id>/<model_version>/<role>/<party_id>/<task_name>/<output_key>.
        let parts: Vec<String> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        let [.., role, party_id, task_name, output_key] = parts.as_slice() else {
            return Err(format!(
                "entry `{name}`: expected <model_id>/<model_version>/<role>/<party_id>/<task_name>/<output_key>"
            ));
        };
        let role: Role = role
            .parse()
            .map_err(|e| format!("entry `{name}`: role: {e}"))?;
        for (field, v, max) in [
            ("party_id", party_id, MAX_ID),
            ("task_name", task_name, MAX_NAME),
            ("output_key", output_key, MAX_NAME),
        ] {
            if v.is_empty() || v.chars().count() > max {
                return Err(format!(
                    "entry `{name}`: {field} must have 1 to {max} characters"
                ));
            }
        }
        let limit = IMPORT_LIMIT as u64;
        if f.size() > limit || inflated + f.size() > MAX_INFLATED {
            return Err(format!("entry `{name}`: too large ({} bytes)", f.size()));
        }
        let mut buf = Vec::new();
        (&mut f)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("entry `{name}`: {e}"))?;
        if buf.len() as u64 > limit {
            return Err(format!("entry `{name}`: inflates past {limit} bytes"));
        }
        inflated += buf.len() as u64;
        out.push(Imported {
            role,
            party_id: party_id.clone(),
            task_name: task_name.clone(),
            output_key: output_key.clone(),
            package: read_package(&buf, &format!("entry `{name}`"))?,
        });
    }
    if out.is_empty() {
        return Err("the archive holds no model".into());
    }
    Ok(out)
}

/// [`read_zip`] for callers outside the handler (the `model_import` fuzz target): the number
/// of models in the archive.
pub(crate) fn read_model_archive(bytes: &[u8]) -> Result<usize, String> {
    read_zip(bytes).map(|models| models.len())
}

/// The job id imported models are filed under: FATE files them with no job; ours must be
/// non-empty and must not collide with the job that trained them, so it is derived from the
/// model id and version (FNV-1a, stable across builds). Importing the same id and version again
/// replaces those models.
fn import_job_id(model_id: &str, model_version: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model_id.bytes().chain([0]).chain(model_version.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("import_{h:016x}")
}

fn required(p: &HashMap<String, String>, k: &str) -> Result<String, ApiError> {
    opt_param(p, k).ok_or_else(|| ApiError::param(k, "is required"))
}

/// `GET /v2/output/model/download?job_id&role&party_id&task_name`: the task's model package
/// as a tar, or FATE's 2000 (no such task) / 2005 (the task saved no model).
pub(super) async fn download(
    State(st): State<Arc<ApiState>>,
    axum::extract::Query(p): Params,
) -> Result<Response, ApiError> {
    let job_id = required(&p, "job_id")?;
    let role = opt_role(&p)?.ok_or_else(|| ApiError::param("role", "is required"))?;
    let party_id = required(&p, "party_id")?;
    let task_name = required(&p, "task_name")?;
    let who = [
        ("job_id", job_id.as_str()),
        ("role", role.as_str()),
        ("party_id", party_id.as_str()),
        ("task_name", task_name.as_str()),
    ];
    let store = st.scheduler.store();
    let tasks = store
        .tasks(&TaskFilter {
            job_id: Some(job_id.clone()),
            role: Some(role),
            party_id: Some(party_id.clone()),
            task_name: Some(task_name.clone()),
            ..Default::default()
        })
        .await?;
    if tasks.is_empty() {
        return Err(ApiError::fate(RetCode::Task.code(), "No found task", &who));
    }
    let models = store
        .models(&job_id, role, &party_id, Some(&task_name))
        .await?;
    let mut files = Vec::new();
    for m in &models {
        let prefix = if models.len() == 1 {
            String::new()
        } else {
            format!("{}/", m.output_key)
        };
        for (name, bytes) in package_files(m).map_err(server)? {
            files.push((format!("{prefix}{name}"), bytes));
        }
    }
    if files.is_empty() {
        return Err(ApiError::fate(
            NO_FOUND_MODEL_OUTPUT,
            "No found output model",
            &who,
        ));
    }
    let tar = tar_of(&files).map_err(server)?;
    let disposition =
        format!("attachment; filename=\"{job_id}_{role}_{party_id}_{task_name}.tar\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        tar,
    )
        .into_response())
}

/// Writes the zip of `models` to `file` through a temporary file, so a reader never sees half
/// an archive. The temporary file is created new (`O_EXCL`): a symlink planted at its name is
/// removed, never followed; the final rename replaces a link at `file` rather than writing
/// through it.
fn write_zip(file: &Path, key_prefix: &str, models: &[ModelRecord]) -> Result<(), String> {
    let tmp = file.with_extension("zip.part");
    let write = || -> Result<(), String> {
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", tmp.display())),
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut zip = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for m in models {
            let package = tar_of(&package_files(m)?).map_err(|e| e.to_string())?;
            let key = format!(
                "{key_prefix}/{}/{}/{}/{}",
                m.role, m.party_id, m.task_name, m.output_key
            );
            zip.start_file(key, opts).map_err(|e| e.to_string())?;
            zip.write_all(&package).map_err(|e| e.to_string())?;
        }
        zip.finish().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, file).map_err(|e| format!("{}: {e}", file.display()))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// `POST /v2/model/export {model_id, model_version, role, party_id, path}`: the party's models
/// of that model id and version as a zip in the node's directory `path`; FATE's 2005 when there
/// are none.
pub(super) async fn export(State(st): State<Arc<ApiState>>, body: String) -> ApiResult {
    let m = body_json(&body)?;
    let model_id = req_str(&m, "model_id")?;
    let model_version = req_str(&m, "model_version")?;
    let party_id = req_str(&m, "party_id")?;
    let role: Role = req_str(&m, "role")?
        .parse()
        .map_err(|e| ApiError::param("role", e))?;
    let path = req_str(&m, "path")?;
    fate_types::check_name("model_id", &model_id)?;
    fate_types::check_name("model_version", &model_version)?;
    fate_types::check_path_id("party_id", &party_id)?;
    // The zip goes only under a data root; checked before anything is looked up or created.
    st.scheduler
        .data_roots()
        .check_write_dir("path", &path)
        .map_err(|e| ApiError::param("path", e.reason))?;
    let mut models = st
        .scheduler
        .store()
        .models_by_model_id(&model_id, &model_version, role, &party_id)
        .await?;
    if models.is_empty() {
        return Err(ApiError::fate(
            NO_FOUND_MODEL_OUTPUT,
            "No found output model",
            &[
                ("model_id", &model_id),
                ("model_version", &model_version),
                ("role", role.as_str()),
                ("party_id", &party_id),
            ],
        ));
    }
    // One entry per (task, output key): the newest if several jobs saved it under this model id
    // (e.g. a training job and an earlier import of its models).
    models.sort_by(|a, b| {
        (&a.task_name, &a.output_key, b.create_time).cmp(&(
            &b.task_name,
            &b.output_key,
            a.create_time,
        ))
    });
    models.dedup_by(|b, a| a.task_name == b.task_name && a.output_key == b.output_key);
    // The zip is written only under a data root (created there if missing).
    let roots = st.scheduler.data_roots().clone();
    let asked = path.clone();
    let dir = tokio::task::spawn_blocking(move || roots.dir_for_write("path", &asked))
        .await
        .map_err(server)?
        .map_err(|e| ApiError::param("path", e.reason))?;
    let file = dir.join(format!("{model_id}_{model_version}_{role}_{party_id}.zip"));
    let key_prefix = format!("{model_id}/{model_version}");
    let listed: Vec<Value> = models
        .iter()
        .map(|m| json!({"task_name": m.task_name, "output_key": m.output_key, "component": m.component}))
        .collect();
    let target = file.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        write_zip(&target, &key_prefix, &models).map_err(|e| ApiError::param("path", e))
    })
    .await
    .map_err(server)??;
    Ok(Envelope::ok(
        json!({"path": file.to_string_lossy(), "models": listed}),
    ))
}

/// `POST /v2/model/import` (multipart: model_id, model_version, file): stores the models of an
/// exported zip under `model_id`/`model_version`.
pub(super) async fn import(State(st): State<Arc<ApiState>>, mut mp: Multipart) -> ApiResult {
    let mut fields = serde_json::Map::new();
    let mut file: Option<axum::body::Bytes> = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::param("multipart", e))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            file = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::param("file", e))?,
            );
        } else {
            let text = field.text().await.map_err(|e| ApiError::param(&name, e))?;
            fields.insert(name, Value::String(text));
        }
    }
    let model_id = req_str(&fields, "model_id")?;
    let model_version = req_str(&fields, "model_version")?;
    for (field, v, max) in [
        ("model_id", &model_id, MAX_MODEL_ID),
        ("model_version", &model_version, MAX_ID),
    ] {
        if v.chars().count() > max {
            return Err(ApiError::param(field, format!("at most {max} characters")));
        }
    }
    // FATE: `NoFoundFile` (5007, "No Found File") when the form has no file.
    let file = file.ok_or_else(|| {
        ApiError::new(
            RetCode::NoFile,
            "No Found File: file is required (a multipart file field)",
        )
    })?;
    let models = tokio::task::spawn_blocking(move || read_zip(&file))
        .await
        .map_err(server)?
        .map_err(|e| ApiError::param("file", e))?;
    let job_id = import_job_id(&model_id, &model_version);
    let now = chrono::Utc::now().timestamp_millis();
    let mut listed = Vec::new();
    for m in models {
        listed.push(json!({"role": m.role, "party_id": m.party_id, "task_name": m.task_name, "output_key": m.output_key}));
        st.scheduler
            .store()
            .save_model(&ModelRecord {
                job_id: job_id.clone(),
                role: m.role,
                party_id: m.party_id,
                task_name: m.task_name,
                output_key: m.output_key,
                model_id: model_id.clone(),
                model_version: model_version.clone(),
                component: m.package.component,
                data: m.package.data,
                create_time: now,
            })
            .await?;
    }
    Ok(Envelope::ok(
        json!({"model_id": model_id, "model_version": model_version, "models": listed}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ModelRecord {
        ModelRecord {
            job_id: "202401010000000000000".into(),
            role: Role::Guest,
            party_id: "9999".into(),
            task_name: "lr_0".into(),
            output_key: "output_model".into(),
            model_id: "m".into(),
            model_version: "0".into(),
            component: "coordinated_lr".into(),
            data: json!({"w": [1.5, -2.0]}),
            create_time: 1,
        }
    }

    #[test]
    fn a_package_reads_back_as_written() {
        let tar = tar_of(&package_files(&record()).unwrap()).unwrap();
        let p = read_package(&tar, "t").unwrap();
        assert_eq!(p.component, "coordinated_lr");
        assert_eq!(p.data, json!({"w": [1.5, -2.0]}));
    }

    #[test]
    fn a_zip_reads_back_with_names_from_the_storage_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.zip");
        write_zip(&file, "m/0", &[record()]).unwrap();
        let got = read_zip(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].role,
                got[0].party_id.as_str(),
                got[0].task_name.as_str()
            ),
            (Role::Guest, "9999", "lr_0")
        );
        assert_eq!(got[0].output_key, "output_model");
    }

    #[test]
    fn bad_archives_name_what_is_wrong() {
        assert!(read_zip(b"not a zip").unwrap_err().contains("not a zip"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&file).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("m/0/chief/9999/lr_0/output_model", opts)
            .unwrap();
        zip.write_all(b"x").unwrap();
        zip.finish().unwrap();
        let err = read_zip(&std::fs::read(&file).unwrap()).unwrap_err();
        assert!(err.contains("role") && err.contains("chief"), "{err}");
        let tar = tar_of(&[("json_model".into(), b"{}".to_vec())]).unwrap();
        let err = read_package(&tar, "e").unwrap_err();
        assert!(err.contains("meta.yaml"), "{err}");
    }

    #[test]
    fn import_job_ids_differ_by_model_id_and_version() {
        let a = import_job_id("m", "0");
        assert_eq!(a, import_job_id("m", "0"));
        assert_ne!(a, import_job_id("m", "1"));
        assert_ne!(import_job_id("m0", ""), import_job_id("m", "0"));
        assert!(a.len() <= MAX_ID);
    }
}
