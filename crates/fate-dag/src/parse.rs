//! Text to [`DagSchema`]: YAML (what `flow job submit -c dag.yaml` reads) or JSON (the REST body
//! of `POST /v2/job/submit`, fate-spec §3.4), bare or wrapped in `{"dag_schema": ...}`.

use crate::error::{PlanError, PlanErrorKind};
use crate::spec::DagSchema;
use serde::Deserialize;

/// Job definitions larger than this are refused before parsing. FATE's largest example DAGs are
/// a few kilobytes; the bound keeps a hostile body from costing memory.
pub const MAX_DAG_TEXT_BYTES: usize = 4 << 20;

/// The REST body: `{"dag_schema": {...}}`; other keys (e.g. `user_name`) are ignored.
#[derive(Deserialize)]
struct Wrapped {
    dag_schema: DagSchema,
}

const FIELD: &str = "dag_schema";

/// Parses a FATE 2.x job definition. Text whose first non-blank character is `{` is read as
/// JSON (so JSON mistakes get JSON error messages); anything else as YAML. Both the bare
/// `{dag, schema_version}` and the REST wrapper `{dag_schema: {dag, schema_version}}` are
/// accepted. Errors are [`PlanErrorKind::Syntax`] and carry line and column when the parser
/// reports them.
pub fn parse_dag(text: &str) -> Result<DagSchema, PlanError> {
    if text.len() > MAX_DAG_TEXT_BYTES {
        return Err(PlanError::job(
            PlanErrorKind::Syntax,
            FIELD,
            format!(
                "job definition is {} bytes, more than the limit of {MAX_DAG_TEXT_BYTES}",
                text.len()
            ),
        ));
    }
    let body = text.trim_start_matches('\u{feff}');
    if body.trim_start().starts_with('{') {
        parse_json(body)
    } else {
        parse_yaml(body)
    }
}

fn parse_json(text: &str) -> Result<DagSchema, PlanError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(json_error)?;
    let wrapped = match &value {
        serde_json::Value::Object(m) => m.contains_key("dag_schema") && !m.contains_key("dag"),
        _ => return Err(not_a_map()),
    };
    // Parse the text again (not the value) so type errors keep their position.
    if wrapped {
        serde_json::from_str::<Wrapped>(text)
            .map(|w| w.dag_schema)
            .map_err(json_error)
    } else {
        serde_json::from_str::<DagSchema>(text).map_err(json_error)
    }
}

fn parse_yaml(text: &str) -> Result<DagSchema, PlanError> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    let wrapped = match &value {
        serde_yaml_ng::Value::Mapping(m) => m.contains_key("dag_schema") && !m.contains_key("dag"),
        _ => return Err(not_a_map()),
    };
    if wrapped {
        serde_yaml_ng::from_str::<Wrapped>(text)
            .map(|w| w.dag_schema)
            .map_err(yaml_error)
    } else {
        serde_yaml_ng::from_str::<DagSchema>(text).map_err(yaml_error)
    }
}

fn not_a_map() -> PlanError {
    PlanError::job(
        PlanErrorKind::Syntax,
        FIELD,
        "expected a map with a `dag` key (or a `dag_schema` key wrapping one)",
    )
}

fn json_error(e: serde_json::Error) -> PlanError {
    // serde_json appends " at line L column C" to its message; we carry them separately.
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) if e.line() > 0 => msg[..i].to_string(),
        _ => msg,
    };
    let (line, column) = if e.line() > 0 {
        (Some(e.line()), Some(e.column()))
    } else {
        (None, None)
    };
    PlanError::job(PlanErrorKind::Syntax, FIELD, format!("invalid JSON: {msg}")).at(line, column)
}

fn yaml_error(e: serde_yaml_ng::Error) -> PlanError {
    let msg = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => (Some(loc.line()), Some(loc.column())),
        None => (None, None),
    };
    let msg = match msg.rfind(" at line ") {
        Some(i) if line.is_some() => msg[..i].to_string(),
        _ => msg,
    };
    PlanError::job(PlanErrorKind::Syntax, FIELD, format!("invalid YAML: {msg}")).at(line, column)
}
