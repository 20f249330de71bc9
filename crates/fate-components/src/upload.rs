//! `upload`: reads a CSV file on the node and stores it as a named table with its schema. In
//! FATE an upload is itself a job run as role `local`, party `0` (fate-spec §3.4 "Upload meta").
//!
//! The whole file is validated before anything is written, so a bad file changes nothing:
//! ragged rows, non-numeric features or labels, duplicate ids and a missing id or label column
//! are errors that name the line and column.

use crate::param;
use fate_runtime::{Component, ComponentError, Ctx, DataFrame, Row, Schema};
use fate_types::Role;
use fate_types::component::ComponentSpec;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;

pub struct Upload;

/// Most partitions an upload may ask for (FATE users choose 4 to 16).
pub const MAX_PARTITIONS: usize = 1024;

/// FATE's upload `meta` (fate-spec §3.4). Unknown keys are ignored as FATE ignores them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct UploadMeta {
    pub delimiter: Option<String>,
    pub sample_id_name: Option<String>,
    pub match_id_name: Option<String>,
    pub label_name: Option<String>,
    pub label_type: Option<String>,
    pub weight_name: Option<String>,
    pub dtype: Option<String>,
    /// Column names when the file has no header line (`head: false`), delimited like the data.
    pub header: Option<String>,
}

/// A value of the file as it may appear in an error: at most 40 characters, escaped, so an
/// error never carries more than a cell of the file.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push_str("...");
    }
    out.escape_debug().to_string()
}

/// Parses CSV text into rows keyed by sample id. Pure, so it is tested without a node.
pub fn parse_csv(
    text: &str,
    head: bool,
    meta: &UploadMeta,
    extend_sid: bool,
) -> Result<(Schema, Vec<(String, Row)>), String> {
    let delimiter = meta.delimiter.as_deref().unwrap_or(",");
    let delim_byte = match delimiter.as_bytes() {
        [b] => *b,
        _ => {
            return Err(format!(
                "meta.delimiter: `{delimiter}` must be a single character"
            ));
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delim_byte)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header: Vec<String> = if head {
        match records.next() {
            Some(Ok(r)) => r.iter().map(|s| s.trim().to_string()).collect(),
            Some(Err(e)) => return Err(format!("line 1: {e}")),
            None => return Err("the file is empty: expected a header line".into()),
        }
    } else {
        match &meta.header {
            Some(h) => h.split(delimiter).map(|s| s.trim().to_string()).collect(),
            None => return Err("meta.header: required when head is false".into()),
        }
    };
    let find = |field: &str, name: &str| -> Result<usize, String> {
        header.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "meta.{field}: column `{}` is not in the header ({})",
                clip(name),
                clip(&header.join(","))
            )
        })
    };
    let match_id_name = meta
        .match_id_name
        .clone()
        .unwrap_or_else(|| header.first().cloned().unwrap_or_default());
    let id_idx = find("match_id_name", &match_id_name)?;
    let label_idx = meta
        .label_name
        .as_deref()
        .map(|n| find("label_name", n))
        .transpose()?;
    let weight_idx = meta
        .weight_name
        .as_deref()
        .map(|n| find("weight_name", n))
        .transpose()?;
    let feature_idx: Vec<usize> = (0..header.len())
        .filter(|i| *i != id_idx && Some(*i) != label_idx && Some(*i) != weight_idx)
        .collect();
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    let first_line = if head { 2 } else { 1 };
    for (n, rec) in records.enumerate() {
        let line = n + first_line;
        let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
        if rec.len() == 1 && rec.get(0).is_some_and(|s| s.trim().is_empty()) {
            continue;
        }
        if rec.len() != header.len() {
            return Err(format!(
                "line {line}: {} fields, but the header has {}",
                rec.len(),
                header.len()
            ));
        }
        let number = |i: usize| -> Result<f64, String> {
            let raw = rec.get(i).unwrap_or("").trim();
            raw.parse::<f64>().map_err(|_| {
                format!(
                    "line {line}, column `{}`: `{}` is not a number",
                    clip(&header[i]),
                    clip(raw)
                )
            })
        };
        let match_id = rec.get(id_idx).unwrap_or("").trim().to_string();
        if match_id.is_empty() {
            return Err(format!(
                "line {line}, column `{}`: empty id",
                clip(&match_id_name)
            ));
        }
        let sample_id = if extend_sid {
            format!("{}", rows.len())
        } else {
            match_id.clone()
        };
        if !extend_sid && !seen.insert(match_id.clone()) {
            return Err(format!(
                "line {line}, column `{}`: duplicate id `{}`",
                clip(&match_id_name),
                clip(&match_id)
            ));
        }
        let features = feature_idx
            .iter()
            .map(|i| number(*i))
            .collect::<Result<Vec<_>, _>>()?;
        let label = label_idx.map(number).transpose()?;
        let weight = weight_idx.map(number).transpose()?;
        rows.push((
            sample_id,
            Row {
                match_id,
                label,
                weight,
                features,
            },
        ));
    }
    let schema = Schema {
        sample_id_name: if extend_sid {
            "extend_sid".into()
        } else {
            match_id_name.clone()
        },
        match_id_name,
        label_name: meta.label_name.clone(),
        weight_name: meta.weight_name.clone(),
        feature_names: feature_idx.iter().map(|i| header[*i].clone()).collect(),
        label_type: meta.label_type.clone().unwrap_or_else(|| "int32".into()),
        dtype: meta.dtype.clone().unwrap_or_else(|| "float32".into()),
        dataset_type: None,
    };
    Ok((schema, rows))
}

impl Component for Upload {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "upload".into(),
            legacy_modules: vec!["Upload".into()],
            description: "stores a CSV file of the node as a named table".into(),
            roles: vec![Role::Local],
            params: vec![
                param("file", true, None, "path of the CSV file on the node"),
                param(
                    "head",
                    false,
                    Some(json!(true)),
                    "whether the first line is a header",
                ),
                param("partitions", false, Some(json!(8)), "table partitions")
                    .max(crate::limits::PARTITIONS),
                param(
                    "meta",
                    false,
                    Some(json!({})),
                    "columns: match_id_name, label_name, weight_name, delimiter, ...",
                ),
                param("namespace", true, None, "table namespace"),
                param("name", true, None, "table name"),
                param(
                    "extend_sid",
                    false,
                    Some(json!(false)),
                    "generate sample ids instead of using the match id",
                ),
                param(
                    "overwrite",
                    false,
                    Some(json!(false)),
                    "replace an existing table of that name",
                ),
            ],
            inputs: vec![],
            outputs: vec![],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let file: String = ctx.param("file")?;
        let head: bool = ctx.param("head")?;
        let partitions: usize = ctx.param("partitions")?;
        let meta: UploadMeta = ctx.param("meta")?;
        let namespace: String = ctx.param("namespace")?;
        let name: String = ctx.param("name")?;
        let extend_sid: bool = ctx.param("extend_sid")?;
        let overwrite: bool = ctx.param("overwrite")?;
        if partitions == 0 {
            return Err(ComponentError::param("partitions", "must be at least 1"));
        }
        // A table exists once its metadata row does (the scheduler writes the row after the
        // data): data without a row was left by an interrupted upload and is replaced.
        let listed = ctx
            .catalog
            .table(&namespace, &name)
            .map_err(ComponentError::Failed)?
            .is_some();
        if !overwrite && listed {
            return Err(ComponentError::Failed(format!(
                "table {namespace}.{name} exists already; set overwrite to replace it"
            )));
        }
        let orphan = !listed && ctx.computing.exists(&namespace, &name)?;
        if orphan && !overwrite {
            ctx.info(format!(
                "replacing data of {namespace}.{name} that an interrupted upload left without \
                 metadata"
            ));
        }
        if partitions > MAX_PARTITIONS {
            return Err(ComponentError::param(
                "partitions",
                format!("{partitions} is more than the limit of {MAX_PARTITIONS}"),
            ));
        }
        // Only files under the node's data roots, regular, within the size limit; the check
        // is made on the opened handle (fate_runtime::files).
        let (text, _) = ctx
            .files
            .read_text("file", &file)
            .map_err(|e| ComponentError::param("file", e.reason))?;
        let (schema, rows) = parse_csv(&text, head, &meta, extend_sid)
            .map_err(|e| ComponentError::Data(format!("{file}: {e}")))?;
        let count = rows.len();
        let df = DataFrame {
            schema,
            table: ctx.computing.parallelize(rows, partitions),
        };
        ctx.save_user_table(&namespace, &name, &df, overwrite || orphan)?;
        fate_runtime::fault::point("upload.data_written"); // data saved, no metadata row yet
        ctx.info(format!(
            "uploaded {count} rows from {file} to table {namespace}.{name}"
        ));
        ctx.metric(
            "upload",
            "summary",
            json!({"count": count, "namespace": namespace, "name": name, "partitions": partitions}),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> UploadMeta {
        UploadMeta {
            label_name: Some("y".into()),
            match_id_name: Some("id".into()),
            ..Default::default()
        }
    }

    #[test]
    fn parses_ids_labels_and_features() {
        let (schema, rows) =
            parse_csv("id,y,x0,x1\na,1,0.5,2\nb,0,-1,3e2\n", true, &meta(), false).unwrap();
        assert_eq!(schema.feature_names, vec!["x0", "x1"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1].1,
            Row {
                match_id: "b".into(),
                label: Some(0.0),
                weight: None,
                features: vec![-1.0, 300.0]
            }
        );
    }

    #[test]
    fn ragged_row_names_the_line() {
        let err = parse_csv("id,y,x0\na,1,0.5\nb,0\n", true, &meta(), false).unwrap_err();
        assert!(err.contains("line 3") && err.contains("2 fields"), "{err}");
    }

    #[test]
    fn non_numeric_feature_names_line_and_column() {
        let err = parse_csv("id,y,x0\na,1,0.5\nb,0,abc\n", true, &meta(), false).unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("`x0`") && err.contains("abc"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_ids_are_refused_unless_sample_ids_are_generated() {
        let text = "id,y,x0\na,1,0.5\na,0,1\n";
        let err = parse_csv(text, true, &meta(), false).unwrap_err();
        assert!(err.contains("duplicate id `a`"), "{err}");
        let (_, rows) = parse_csv(text, true, &meta(), true).unwrap();
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn missing_label_column_is_named() {
        let err = parse_csv("id,x0\na,1\n", true, &meta(), false).unwrap_err();
        assert!(
            err.contains("meta.label_name") && err.contains("`y`"),
            "{err}"
        );
    }
}
