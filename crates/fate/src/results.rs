//! What a job produced, as FATE's `flow output` shows it: metrics as a table (FATE's
//! evaluation record `{evaluated task: {data set: [{metric, val}]}}` flattened), model
//! summaries, output data previews and downloads, log downloads; and the results a finished
//! job prints at its initiator (`fate job submit --wait`, `fate job wait`).

use crate::ApiArgs;
use crate::client::Client;
use crate::output::{cell, table as print_table};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Which task output: FATE's `-j/-r/-p/-tn` of `flow output`.
#[derive(Args, Clone)]
pub struct TaskRef {
    /// The job id.
    #[arg(short = 'j', long = "job-id")]
    pub job_id: String,
    /// The party's role (guest, host, arbiter; `local` for uploads).
    #[arg(short = 'r', long)]
    pub role: String,
    /// The party id.
    #[arg(short = 'p', long = "party-id")]
    pub party_id: String,
    /// The task name (as in the DAG, e.g. `lr_0`).
    #[arg(short = 't', long = "task-name", visible_alias = "tn")]
    pub task_name: String,
}

impl TaskRef {
    fn query(&self) -> Vec<(&str, &str)> {
        vec![
            ("job_id", self.job_id.as_str()),
            ("role", self.role.as_str()),
            ("party_id", self.party_id.as_str()),
            ("task_name", self.task_name.as_str()),
        ]
    }
}

#[derive(Subcommand)]
pub enum OutputCommand {
    /// A task's metrics as a table (AUC, KS, ...), as `flow output query-metric`.
    Metrics {
        #[command(flatten)]
        task: TaskRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A task's models: output key, component and a summary of each (`flow output
    /// query-model`; `--json` prints them whole).
    Model {
        #[command(flatten)]
        task: TaskRef,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The first rows of a task's output data (`flow output display-data`), or all of it as CSV
    /// files with `--download` (`flow output download-data`).
    Data {
        #[command(flatten)]
        task: TaskRef,
        /// Rows shown per output (at most 100, the node's preview).
        #[arg(long, default_value_t = 10)]
        rows: usize,
        /// Write every output as `<dir>/<output key>/<table>.csv` instead of showing rows.
        #[arg(long, value_name = "DIR")]
        download: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Download a job's log files into a directory (`flow job download-log`).
    Logs {
        /// The job id.
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        /// Directory to write `<job id>/...` log files into.
        #[arg(short = 'o', long = "output-path", default_value = ".")]
        output: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// One metric value: (evaluated task, data set, metric, value).
pub type MetricRow = (String, String, String, f64);

/// The numeric metrics of a task's metric records. FATE's `evaluation` record gives
/// `{evaluated task: {data set: [{metric, val} | [{metric, val}, ...]]}}`; other records
/// (`auc`, `loss`, ...) count when `data[<name>]` is a number. When an evaluation record is
/// there, only it is read (fate-rs also records each metric on its own).
pub fn metric_rows(metrics: &[Value], task_name: &str) -> Vec<MetricRow> {
    let mut out = Vec::new();
    let evaluation: Vec<&Value> = metrics
        .iter()
        .filter(|m| m["type"] == "evaluation" || m["name"] == "evaluation")
        .collect();
    if !evaluation.is_empty() {
        for m in evaluation {
            let Some(by_task) = m["data"].as_object() else {
                continue;
            };
            for (evaluated, by_set) in by_task {
                let Some(by_set) = by_set.as_object() else {
                    continue;
                };
                for (set, list) in by_set {
                    let flat = list.as_array().into_iter().flatten().flat_map(|e| match e {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    });
                    for e in flat {
                        if let (Some(name), Some(val)) = (e["metric"].as_str(), e["val"].as_f64()) {
                            out.push((evaluated.clone(), set.clone(), name.to_string(), val));
                        }
                    }
                }
            }
        }
        return out;
    }
    for m in metrics {
        let Some(name) = m["name"].as_str() else {
            continue;
        };
        if let Some(val) = m["data"][name].as_f64() {
            out.push((task_name.to_string(), "-".into(), name.to_string(), val));
        }
    }
    out
}

fn print_metric_rows(rows: &[MetricRow]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(t, s, m, v)| vec![t.clone(), s.clone(), m.clone(), format!("{v:.6}")])
        .collect();
    print_table(&["task", "data_set", "metric", "value"], &rows);
}

/// After a job ended: every party's status, then the metrics of its evaluation tasks at the
/// initiator (FATE reads results at the guest that submitted the job).
/// With `json_out`, prints `row` (the job's row that decides its outcome) with `jobs` (every
/// party's row) and `metrics` added.
pub fn print_results(client: &Client, job_id: &str, json_out: bool, row: &Value) -> Result<Value> {
    let jobs = client.get("/job/query", &[("job_id", job_id)])?["data"].clone();
    let jobs = jobs.as_array().cloned().unwrap_or_default();
    let initiator = jobs
        .iter()
        .find(|j| j["party_id"] == j["initiator_party_id"] && j["role"] != "arbiter")
        .or_else(|| jobs.first())
        .cloned()
        .unwrap_or(Value::Null);
    let mut all_rows: Vec<MetricRow> = Vec::new();
    if let (Some(role), Some(pid)) = (initiator["role"].as_str(), initiator["party_id"].as_str()) {
        let tasks = client
            .get(
                "/job/task/query",
                &[("job_id", job_id), ("role", role), ("party_id", pid)],
            )
            .map(|v| v["data"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default();
        let mut names: Vec<String> = tasks
            .iter()
            .filter(|t| t["status"] == "success")
            .filter_map(|t| t["task_name"].as_str().map(String::from))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let q = [
                ("job_id", job_id),
                ("role", role),
                ("party_id", pid),
                ("task_name", name.as_str()),
            ];
            if let Ok(v) = client.get("/output/metric/query", &q) {
                let metrics = v["data"].as_array().cloned().unwrap_or_default();
                if metrics.iter().any(|m| m["type"] == "evaluation") {
                    all_rows.extend(metric_rows(&metrics, &name));
                }
            }
        }
    }
    if json_out {
        let metrics: Vec<Value> = all_rows
            .iter()
            .map(|(t, s, m, v)| json!({"task": t, "data_set": s, "metric": m, "value": v}))
            .collect();
        let mut out = row.clone();
        out["jobs"] = json!(jobs);
        out["metrics"] = json!(metrics);
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(out);
    }
    crate::client::show_jobs(&jobs);
    if !all_rows.is_empty() {
        println!();
        println!(
            "evaluation at {} {}:",
            cell(&initiator["role"]),
            cell(&initiator["party_id"])
        );
        print_metric_rows(&all_rows);
    }
    Ok(Value::Array(jobs))
}

pub fn run(cmd: OutputCommand) -> Result<()> {
    match cmd {
        OutputCommand::Metrics { task, api } => {
            let v = Client::for_api(&api).get("/output/metric/query", &task.query())?;
            let metrics = v["data"].as_array().cloned().unwrap_or_default();
            if api.json {
                println!("{}", serde_json::to_string_pretty(&v["data"])?);
            } else {
                let rows = metric_rows(&metrics, &task.task_name);
                if rows.is_empty() {
                    println!(
                        "no numeric metrics for task {} at {} {} ({} records; --json shows them)",
                        task.task_name,
                        task.role,
                        task.party_id,
                        metrics.len()
                    );
                } else {
                    print_metric_rows(&rows);
                }
            }
        }
        OutputCommand::Model { task, api } => {
            let v = Client::for_api(&api).get("/output/model/query", &task.query())?;
            if api.json {
                println!("{}", serde_json::to_string_pretty(&v["data"])?);
                return Ok(());
            }
            let models = v["data"].as_object().cloned().unwrap_or_default();
            if models.is_empty() {
                println!(
                    "task {} at {} {} has no model",
                    task.task_name, task.role, task.party_id
                );
            }
            let rows: Vec<Vec<String>> = models
                .iter()
                .map(|(key, m)| {
                    vec![
                        key.clone(),
                        cell(&m["component"]),
                        cell(&m["model_id"]),
                        cell(&m["model_version"]),
                        summary(&m["data"]),
                    ]
                })
                .collect();
            print_table(
                &["output_key", "component", "model_id", "version", "summary"],
                &rows,
            );
        }
        OutputCommand::Data {
            task,
            rows,
            download,
            api,
        } => {
            let client = Client::for_api(&api);
            if let Some(dir) = download {
                let tar = client.get_bytes("/output/data/download", &task.query())?;
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let files = unpack(&tar, &dir)?;
                for f in files {
                    println!("{}", f.display());
                }
                return Ok(());
            }
            let v = client.get("/output/data/display", &task.query())?;
            if api.json {
                println!("{}", serde_json::to_string_pretty(&v["data"])?);
                return Ok(());
            }
            for (key, out) in v["data"].as_object().cloned().unwrap_or_default() {
                println!("{key}:");
                let header: Vec<String> = out["header"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(cell)
                    .collect();
                let header: Vec<&str> = header.iter().map(String::as_str).collect();
                let data: Vec<Vec<String>> = out["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(rows)
                    .map(|r| {
                        r.as_array()
                            .into_iter()
                            .flatten()
                            .map(|c| {
                                let s = cell(c);
                                if s.chars().count() > 60 {
                                    format!("{}...", s.chars().take(57).collect::<String>())
                                } else {
                                    s
                                }
                            })
                            .collect()
                    })
                    .collect();
                print_table(&header, &data);
            }
        }
        OutputCommand::Logs {
            job_id,
            output,
            api,
        } => {
            let bytes = Client::for_api(&api)
                .post_bytes("/job/log/download", &json!({"job_id": job_id}))?;
            let dir = output.join(&job_id);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let files = unpack(&bytes, &dir)?;
            println!("{} log files under {}", files.len(), dir.display());
        }
    }
    Ok(())
}

/// A model's summary cell: its top-level keys, or its size.
fn summary(data: &Value) -> String {
    match data {
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().map(String::as_str).take(8).collect();
            let more = if m.len() > 8 { ", ..." } else { "" };
            format!("{{{}{more}}}", keys.join(", "))
        }
        Value::Null => "-".into(),
        other => {
            let s = other.to_string();
            format!("{} bytes of JSON", s.len())
        }
    }
}

/// Unpacks a tar (or gzipped tar) into `dir`, refusing entries that would leave it.
fn unpack(bytes: &[u8], dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let gz = bytes.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn std::io::Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("a broken tar entry")?;
        let path = entry.path()?.to_path_buf();
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            bail!("the archive names {} outside the target", path.display());
        }
        if !entry.unpack_in(dir)? {
            bail!("the archive names {} outside the target", path.display());
        }
        if entry.header().entry_type().is_file() {
            out.push(dir.join(&path));
        }
    }
    Ok(out)
}
