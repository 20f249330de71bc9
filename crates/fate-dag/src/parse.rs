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

/// Deepest nesting of maps and lists a job definition may have. FATE's DAGs nest about 8 deep;
/// the bound is checked on the text before any parser runs, so a hostile body (100k nested
/// brackets) is refused in microseconds instead of costing the parser seconds.
pub const MAX_DAG_DEPTH: usize = 64;
/// Most tasks, parties and party overrides a job may list.
pub const MAX_DAG_ITEMS: usize = 1000;

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
    let json = body.trim_start().starts_with('{');
    check_depth(body, json)?;
    let dag = if json {
        parse_json(body)?
    } else {
        parse_yaml(body)?
    };
    check_size(&dag)?;
    Ok(dag)
}

/// Refuses a DAG with more tasks, parties or overrides than [`MAX_DAG_ITEMS`].
pub fn check_size(dag: &DagSchema) -> Result<(), PlanError> {
    let d = &dag.dag;
    let parties: usize = d.parties.iter().map(|p| p.party_id.len()).sum();
    for (field, n) in [
        ("dag.tasks", d.tasks.len()),
        ("dag.parties", parties),
        ("dag.party_tasks", d.party_tasks.len()),
    ] {
        if n > MAX_DAG_ITEMS {
            return Err(PlanError::job(
                PlanErrorKind::BadValue,
                field,
                format!("{n} entries, more than the limit of {MAX_DAG_ITEMS}"),
            ));
        }
    }
    Ok(())
}

/// Scans the text for its nesting depth without parsing it: brackets and braces outside
/// quoted strings and comments (JSON and YAML flow style), and for YAML also indentation
/// levels and `- ` sequence entries opened on one line. Errors name the line.
pub fn check_depth(text: &str, json: bool) -> Result<(), PlanError> {
    let too_deep = |line: usize| {
        PlanError::job(
            PlanErrorKind::Syntax,
            FIELD,
            format!("nested more than {MAX_DAG_DEPTH} levels deep"),
        )
        .at(Some(line), None)
    };
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut indents: Vec<usize> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if !json && quote.is_none() && flow == 0 {
            // Block structure: indentation levels plus `- ` entries at the start of the line.
            let trimmed = line.trim_start_matches(' ');
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                let indent = line.len() - trimmed.len();
                while indents.last().is_some_and(|&i| i > indent) {
                    indents.pop();
                }
                if indents.last().is_none_or(|&i| i < indent) {
                    indents.push(indent);
                }
                let mut dashes = 0;
                let mut rest = trimmed;
                while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
                    dashes += 1;
                    rest = r.trim_start_matches(' ');
                }
                if indents.len() + dashes > MAX_DAG_DEPTH {
                    return Err(too_deep(line_no));
                }
            }
        }
        let mut prev = ' ';
        for c in line.chars() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q == '"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '"' => quote = Some('"'),
                    '\'' if !json && (flow > 0 || prev == ' ' || prev == ':' || prev == '-') => {
                        quote = Some('\'')
                    }
                    '#' if !json && (prev == ' ' || prev == '\t') => break,
                    '[' | '{' => {
                        flow += 1;
                        if flow + indents.len() > MAX_DAG_DEPTH {
                            return Err(too_deep(line_no));
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
        // A YAML single-quoted scalar may span lines; a double-quoted one too. Nothing else
        // carries over.
        escaped = false;
    }
    Ok(())
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
