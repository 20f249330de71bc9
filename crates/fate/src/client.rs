//! Client commands: talk to a node's REST API like FATE's `flow` CLI.

use crate::ApiArgs;
use crate::output::{cell, table as print_table, time_cell};
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A FATE-Flow REST client.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// App id and token to sign requests with (FATE's client authentication).
    app: Option<(String, String)>,
}

/// A response envelope that is not success.
#[derive(Debug)]
pub struct ApiFailure {
    pub code: i64,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for ApiFailure {}

/// The node's base URL: `127.0.0.1:9380` means `http://127.0.0.1:9380` (as FATE's `flow init
/// --ip --port` names a node), and a trailing `/` is dropped.
pub fn base_url(api: &str) -> String {
    let api = api.trim().trim_end_matches('/');
    if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    }
}

impl Client {
    /// A client of `base`, signing with `FATE_APP_ID` and `FATE_APP_TOKEN` when both are set.
    pub fn new(base: &str) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self::with_app(base, env("FATE_APP_ID"), env("FATE_APP_TOKEN"))
    }

    /// A client for the `--api`, `--app-id` and `--app-token` options.
    pub fn for_api(api: &ApiArgs) -> Self {
        Self::with_app(&api.api, api.app_id.clone(), api.app_token.clone())
    }

    fn with_app(base: &str, app_id: Option<String>, app_token: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        Client {
            base: base_url(base),
            agent,
            app: app_id.zip(app_token),
        }
    }

    /// Adds FATE's signed headers (fate-spec §3.4 "Client auth signature") when the client has
    /// an app; `userName` is `$USER`, as the job's user.
    fn signed(&self, req: ureq::Request) -> ureq::Request {
        let Some((app_id, token)) = &self.app else {
            return req;
        };
        let now = chrono::Utc::now();
        let timestamp = now.timestamp_millis().to_string();
        let nonce = format!("{:04}", now.timestamp_subsec_nanos() % 10_000);
        let user = std::env::var("USER").unwrap_or_default();
        let signature = fate_api::auth::sign(app_id, token, &user, &nonce, &timestamp);
        req.set("appId", app_id)
            .set("userName", &user)
            .set("Nonce", &nonce)
            .set("Timestamp", &timestamp)
            .set("Signature", &signature)
    }

    fn decode(&self, what: &str, resp: Result<ureq::Response, ureq::Error>) -> Result<Value> {
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Err(anyhow!(
                    "cannot reach the node at {} ({what}): {e}",
                    self.base
                ));
            }
        };
        let v: Value = resp
            .into_json()
            .with_context(|| format!("{what}: the node's answer is not JSON"))?;
        let code = v.get("code").and_then(Value::as_i64).unwrap_or(-1);
        if code != 0 {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_string();
            return Err(ApiFailure { code, message }.into());
        }
        Ok(v)
    }

    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let mut req = self.signed(self.agent.get(&format!("{}/v2{path}", self.base)));
        for (k, v) in query {
            req = req.query(k, v);
        }
        self.decode(path, req.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let req = self.signed(self.agent.post(&format!("{}/v2{path}", self.base)));
        self.decode(path, req.send_json(body.clone()))
    }

    /// A GET answered with bytes (a tar download); an error envelope becomes the error.
    pub fn get_bytes(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<u8>> {
        let mut req = self.signed(self.agent.get(&format!("{}/v2{path}", self.base)));
        for (k, v) in query {
            req = req.query(k, v);
        }
        self.bytes(path, req.call())
    }

    /// A POST answered with bytes (`/job/log/download`).
    pub fn post_bytes(&self, path: &str, body: &Value) -> Result<Vec<u8>> {
        let req = self.signed(self.agent.post(&format!("{}/v2{path}", self.base)));
        self.bytes(path, req.send_json(body.clone()))
    }

    fn bytes(&self, what: &str, resp: Result<ureq::Response, ureq::Error>) -> Result<Vec<u8>> {
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Err(anyhow!(
                    "cannot reach the node at {} ({what}): {e}",
                    self.base
                ));
            }
        };
        let json = resp.content_type() == "application/json";
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)
            .with_context(|| format!("{what}: reading the answer"))?;
        if json {
            let v: Value = serde_json::from_slice(&body)
                .with_context(|| format!("{what}: the node's answer is not JSON"))?;
            return Err(ApiFailure {
                code: v["code"].as_i64().unwrap_or(-1),
                message: v["message"].as_str().unwrap_or("no message").to_string(),
            }
            .into());
        }
        Ok(body)
    }

    pub fn post_text(&self, path: &str, body: &str) -> Result<Value> {
        let req = self
            .signed(self.agent.post(&format!("{}/v2{path}", self.base)))
            .set("Content-Type", "application/json");
        self.decode(path, req.send_string(body))
    }

    /// Posts a multipart form with one file and text fields (hand-built: one body, no extra
    /// crate for a form this simple).
    pub fn post_file(&self, path: &str, file: &Path, fields: &[(String, String)]) -> Result<Value> {
        let data =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let boundary = format!(
            "fate-rs-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let mut body = Vec::with_capacity(data.len() + 1024);
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        let fname = file
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_else(|| "data.csv".into());
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fname}\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let req = self
            .signed(self.agent.post(&format!("{}/v2{path}", self.base)))
            .set(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            );
        self.decode(path, req.send_bytes(&body))
    }

    /// FATE 1.x submit; normalises the 1.x envelope to the 2.x shape callers use.
    pub fn submit_v1(&self, body: &Value) -> Result<Value> {
        let resp = self
            .signed(self.agent.post(&format!("{}/v1/job/submit", self.base)))
            .send_json(body.clone());
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Err(anyhow!(
                    "cannot reach the node at {} (/v1/job/submit): {e}",
                    self.base
                ));
            }
        };
        let v: Value = resp
            .into_json()
            .context("/v1/job/submit: the node's answer is not JSON")?;
        let code = v["retcode"].as_i64().unwrap_or(-1);
        if code != 0 {
            return Err(ApiFailure {
                code,
                message: cell(&v["retmsg"]),
            }
            .into());
        }
        Ok(json!({"job_id": v["jobId"], "data": v["data"]["model_info"]}))
    }

    /// Polls `/job/query` until the job ends, showing its status and progress.
    pub fn wait_job(&self, job_id: &str, timeout: Duration, quiet: bool) -> Result<Value> {
        let bar = if quiet {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(100)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} job {prefix} {msg} [{bar:30}] {pos}% {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(job_id.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let start = Instant::now();
        loop {
            let v = self.get("/job/query", &[("job_id", job_id)])?;
            let jobs = v["data"].as_array().cloned().unwrap_or_default();
            let statuses: Vec<&str> = jobs.iter().filter_map(|j| j["status"].as_str()).collect();
            let progress = jobs
                .iter()
                .filter_map(|j| j["progress"].as_i64())
                .min()
                .unwrap_or(0);
            let ended = !statuses.is_empty()
                && statuses
                    .iter()
                    .all(|s| matches!(*s, "success" | "failed" | "canceled" | "timeout"));
            bar.set_position(progress.clamp(0, 100) as u64);
            bar.set_message(statuses.first().copied().unwrap_or("unknown").to_string());
            if ended {
                bar.finish_and_clear();
                let failed = jobs.iter().find(|j| j["status"] != "success");
                return Ok(failed.cloned().unwrap_or_else(|| jobs[0].clone()));
            }
            if start.elapsed() > timeout {
                bar.finish_and_clear();
                bail!("job {job_id} did not end within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(
                if start.elapsed() < Duration::from_secs(2) {
                    50
                } else {
                    500
                },
            ));
        }
    }
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Upload a CSV that is on the node, from FATE's upload conf
    /// (`{file, head, partitions, meta, namespace, name, extend_sid}`).
    Upload {
        /// Upload conf (JSON), as for `flow data upload -c`.
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        /// Replace an existing table of that name.
        #[arg(long)]
        overwrite: bool,
        /// Return after submitting instead of waiting for the upload job.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Upload a CSV from this machine to the node (multipart), as `flow data upload-file`.
    UploadFile {
        /// Upload conf (JSON), as for `flow data upload-file -c`; its `file` is read on this
        /// machine, relative to the conf.
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        /// Replace an existing table of that name.
        #[arg(long)]
        overwrite: bool,
        /// Return after submitting instead of waiting for the upload job.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job: a FATE 2.x DAG (YAML or JSON), as `flow job submit -c dag.yaml`; or, with
    /// `-d`, a FATE 1.x runtime conf and DSL v2.
    Submit {
        /// The DAG (2.x) or the runtime conf (1.x, with --dsl).
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        /// FATE 1.x DSL v2 (JSON); makes `-c` the 1.x runtime conf.
        #[arg(short = 'd', long = "dsl")]
        dsl: Option<PathBuf>,
        /// Wait for the job to end and show its status.
        #[arg(long)]
        wait: bool,
        /// The model a predict DAG reads: sets its `dag.conf.model_warehouse.model_id` (a
        /// training job's model id is its job id).
        #[arg(long, value_name = "ID")]
        model_id: Option<String>,
        /// With `--model-id`: the model's version.
        #[arg(
            long,
            value_name = "VERSION",
            default_value = "0",
            requires = "model_id"
        )]
        model_version: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a job's status at every party.
    Query {
        /// The job id.
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a job's tasks at every party.
    Tasks {
        /// The job id.
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List recent jobs.
    List {
        /// How many jobs to show, newest first (each job has one row per party).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a job's logs (scheduler and every party's tasks).
    Logs {
        /// The job id.
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        /// Only this role's logs (guest, host, arbiter, local).
        #[arg(short = 'r', long)]
        role: Option<String>,
        /// Only this party's logs.
        #[arg(short = 'p', long)]
        party_id: Option<String>,
        /// Only this task's logs (`schedule`: the scheduler's own log).
        #[arg(long = "task-name")]
        task_name: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Follow a submitted job's progress until it ends, then show its results (as `submit
    /// --wait`): re-attaches to a job that is already running.
    Wait {
        /// The job id.
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop a running job at every party, and wait until it has ended (canceled) there, so
    /// that `fate job rerun` can follow at once.
    Stop {
        /// The job id.
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        /// Return once the stop is requested instead of waiting for the job to end.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Rerun the tasks of a job that did not succeed.
    Rerun {
        /// The job id.
        #[arg(short = 'j', long = "job-id")]
        job_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
pub enum TableCommand {
    /// Show a table's metadata (count, partitions, schema).
    Query {
        /// The table's namespace.
        #[arg(long)]
        namespace: String,
        /// The table's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Delete a table.
    Delete {
        /// The table's namespace.
        #[arg(long)]
        namespace: String,
        /// The table's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn read_conf(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{}: not valid JSON or YAML", path.display()))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => bail!("{}: expected an object", path.display()),
    }
}

/// A FATE 1.x DSL: `components` and no 2.x `dag` (or `dag_schema`).
fn is_dsl(doc: &Value) -> bool {
    doc.get("components").is_some() && doc.get("dag").is_none() && doc.get("dag_schema").is_none()
}

fn finish_upload(client: &Client, resp: &Value, no_wait: bool, api: &ApiArgs) -> Result<()> {
    let job_id = resp["job_id"].as_str().unwrap_or_default().to_string();
    let (ns, name) = (
        cell(&resp["data"]["namespace"]),
        cell(&resp["data"]["name"]),
    );
    if no_wait {
        if api.json {
            print_json(resp)
        } else {
            println!("upload job {job_id} submitted for table {ns}.{name}")
        }
        return Ok(());
    }
    let job = client.wait_job(&job_id, Duration::from_secs(3600), api.json)?;
    if job["status"] != "success" {
        bail!(
            "upload job {job_id} {}: {}",
            cell(&job["status"]),
            cell(&job["error"])
        );
    }
    let t = client.get("/table/query", &[("namespace", &ns), ("name", &name)])?;
    if api.json {
        print_json(&json!({"job_id": job_id, "table": t["data"]}));
    } else {
        println!(
            "uploaded table {ns}.{name}: {} rows in {} partitions (job {job_id})",
            cell(&t["data"]["count"]),
            cell(&t["data"]["partitions"])
        );
    }
    Ok(())
}

pub fn data(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Upload {
            conf,
            overwrite,
            no_wait,
            api,
        } => {
            let client = Client::for_api(&api);
            let mut m = read_conf(&conf)?;
            let file = m
                .get("file")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{}: `file` is required", conf.display()))?;
            // A relative path in the conf is relative to the conf file, as a user expects.
            let path = conf.parent().unwrap_or(Path::new(".")).join(file);
            if let Ok(abs) = std::fs::canonicalize(&path) {
                m.insert("file".into(), json!(abs.to_string_lossy()));
            }
            // The node replaces an existing table unless told otherwise (FATE's upload does);
            // the CLI keeps it unless `--overwrite` is given.
            m.insert("overwrite".into(), json!(overwrite));
            let resp = client.post("/data/component/upload", &Value::Object(m))?;
            finish_upload(&client, &resp, no_wait, &api)
        }
        DataCommand::UploadFile {
            conf,
            overwrite,
            no_wait,
            api,
        } => {
            let client = Client::for_api(&api);
            let m = read_conf(&conf)?;
            let file = m
                .get("file")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{}: `file` is required", conf.display()))?;
            let path = conf.parent().unwrap_or(Path::new(".")).join(file);
            let mut fields: Vec<(String, String)> = m
                .iter()
                .filter(|(k, _)| k.as_str() != "file")
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    )
                })
                .collect();
            fields.push(("overwrite".into(), overwrite.to_string()));
            let resp = client.post_file("/data/component/upload/file", &path, &fields)?;
            finish_upload(&client, &resp, no_wait, &api)
        }
    }
}

pub(crate) fn show_jobs(jobs: &[Value]) {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                cell(&j["job_id"]),
                cell(&j["role"]),
                cell(&j["party_id"]),
                cell(&j["status"]),
                format!("{}%", cell(&j["progress"])),
                time_cell(&j["create_time"]),
                j["elapsed"]
                    .as_i64()
                    .map(|ms| format!("{:.3}s", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                cell(&j["error"]),
            ]
        })
        .collect();
    print_table(
        &[
            "job_id", "role", "party_id", "status", "progress", "created", "elapsed", "error",
        ],
        &rows,
    );
}

fn after_submit(client: &Client, resp: Value, wait: bool, api: &ApiArgs) -> Result<()> {
    let job_id = resp["job_id"].as_str().unwrap_or_default().to_string();
    if !wait {
        if api.json {
            print_json(&resp)
        } else {
            println!(
                "job {job_id} submitted (model_id {}, model_version {})",
                cell(&resp["data"]["model_id"]),
                cell(&resp["data"]["model_version"])
            )
        }
        return Ok(());
    }
    wait_and_show(client, &job_id, api)
}

/// Waits for a job (showing its progress), then prints every party's status and the
/// evaluation metrics at its initiator; an error if it did not succeed.
fn wait_and_show(client: &Client, job_id: &str, api: &ApiArgs) -> Result<()> {
    let j = client.wait_job(job_id, Duration::from_secs(24 * 3600), api.json)?;
    crate::results::print_results(client, job_id, api.json, &j)?;
    if j["status"] != "success" {
        bail!(
            "job {job_id} {}: {} (see `fate job logs -j {job_id}`)",
            cell(&j["status"]),
            cell(&j["error"])
        );
    }
    Ok(())
}

/// Log lines of several files (the scheduler's, then each task's, as the node reads them) in
/// time order: by the `[LEVEL] [YYYY-MM-DD HH:MM:SS.mmm]` stamp each line starts with; a line
/// without one (a continued message) keeps its place after the line before it.
fn in_time_order(lines: Vec<Value>) -> Vec<Value> {
    let mut last = String::new();
    let mut keyed: Vec<(String, Value)> = lines
        .into_iter()
        .map(|l| {
            let content = l["content"].as_str().unwrap_or("");
            if let Some(stamp) = content
                .split_once("] [")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(stamp, _)| stamp)
                .filter(|s| s.len() >= 19 && s.as_bytes()[4] == b'-')
            {
                last = stamp.to_string();
            }
            (last.clone(), l)
        })
        .collect();
    // Stable: lines with the same stamp keep the node's order.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, l)| l).collect()
}

/// How long `fate job stop` waits for the job to end at every party.
const STOP_WAIT: Duration = Duration::from_secs(60);

pub fn job(cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::Submit {
            conf,
            dsl,
            wait,
            model_id,
            model_version,
            api,
        } => {
            let client = Client::for_api(&api);
            let text = std::fs::read_to_string(&conf)
                .with_context(|| format!("cannot read {}", conf.display()))?;
            if let Some(dsl) = dsl {
                if model_id.is_some() {
                    bail!(
                        "--model-id sets a 2.x DAG's model_warehouse; a 1.x runtime conf names \
                         its model in job_parameters (model_id, model_version)"
                    );
                }
                let dsl_v = Value::Object(read_conf(&dsl)?);
                let conf_v = Value::Object(read_conf(&conf)?);
                if is_dsl(&conf_v) && !is_dsl(&dsl_v) {
                    bail!(
                        "{} is a FATE 1.x DSL and {} is not: swap them (`-d` takes the DSL, \
                         `-c` the runtime conf)",
                        conf.display(),
                        dsl.display()
                    );
                }
                let resp = client.submit_v1(&json!({"dsl": dsl_v, "runtime_conf": conf_v}))?;
                return after_submit(&client, resp, wait, &api);
            }
            if serde_yaml_ng::from_str::<Value>(&text).is_ok_and(|v| is_dsl(&v)) {
                bail!(
                    "{} is a FATE 1.x DSL (it has `components` and no `dag`): pass it with `-d {}` \
                     and its runtime conf with `-c`, as `fate job submit -c conf.json -d dsl.json`",
                    conf.display(),
                    conf.display()
                );
            }
            // The node parses YAML and JSON and names the offending field; send the text as is.
            let body = if let Some(model_id) = &model_id {
                let mut v: Value = serde_yaml_ng::from_str(&text)
                    .map_err(|e| anyhow!("{}: malformed JSON or YAML: {e}", conf.display()))?;
                let dag = match v.get_mut("dag_schema") {
                    Some(schema) => schema.get_mut("dag"),
                    None => v.get_mut("dag"),
                }
                .and_then(Value::as_object_mut)
                .ok_or_else(|| anyhow!("{}: no `dag` to set the model of", conf.display()))?;
                let conf_v = dag.entry("conf").or_insert_with(|| json!({}));
                let Some(conf_m) = conf_v.as_object_mut() else {
                    bail!("{}: dag.conf is not a mapping", conf.display());
                };
                conf_m.insert(
                    "model_warehouse".into(),
                    json!({"model_id": model_id, "model_version": model_version}),
                );
                let v = if v.get("dag_schema").is_some() {
                    v
                } else {
                    json!({"dag_schema": v})
                };
                v.to_string()
            } else if text.trim_start().starts_with('{') {
                text
            } else {
                let v: Value = serde_yaml_ng::from_str(&text)
                    .map_err(|e| anyhow!("{}: malformed YAML: {e}", conf.display()))?;
                let v = if v.get("dag_schema").is_some() {
                    v
                } else {
                    json!({"dag_schema": v})
                };
                v.to_string()
            };
            let resp = client.post_text("/job/submit", &body)?;
            after_submit(&client, resp, wait, &api)
        }
        JobCommand::Wait { job_id, api } => {
            fate_types::check_job_id("job_id", &job_id).map_err(|e| anyhow!("{e}"))?;
            wait_and_show(&Client::for_api(&api), &job_id, &api)
        }
        JobCommand::Query { job_id, api } => {
            let v = Client::for_api(&api).get("/job/query", &[("job_id", &job_id)])?;
            if api.json {
                print_json(&v["data"])
            } else {
                show_jobs(v["data"].as_array().map(Vec::as_slice).unwrap_or(&[]))
            }
            Ok(())
        }
        JobCommand::Tasks { job_id, api } => {
            let v = Client::for_api(&api).get("/job/task/query", &[("job_id", &job_id)])?;
            if api.json {
                print_json(&v["data"]);
            } else {
                let rows: Vec<Vec<String>> = v["data"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|t| {
                        vec![
                            cell(&t["task_name"]),
                            cell(&t["component"]),
                            cell(&t["role"]),
                            cell(&t["party_id"]),
                            cell(&t["task_version"]),
                            cell(&t["status"]),
                            cell(&t["error"]),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "task",
                        "component",
                        "role",
                        "party_id",
                        "version",
                        "status",
                        "error",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
        JobCommand::List { limit, api } => {
            // The API pages party rows (one per party of a job, as FATE); `--limit` counts
            // jobs, so read a page of rows and keep the newest `limit` job ids.
            let v = Client::for_api(&api).get("/job/list/query", &[("limit", "1000")])?;
            let rows = v["data"]["data"].as_array().cloned().unwrap_or_default();
            let mut ids: Vec<String> = Vec::new();
            for r in &rows {
                if let Some(id) = r["job_id"].as_str()
                    && !ids.iter().any(|i| i == id)
                {
                    ids.push(id.to_string());
                }
            }
            ids.truncate(limit as usize);
            let kept: Vec<Value> = rows
                .into_iter()
                .filter(|r| ids.iter().any(|i| r["job_id"] == i.as_str()))
                .collect();
            if api.json {
                print_json(&json!({"count": ids.len(), "data": kept}))
            } else {
                show_jobs(&kept)
            }
            Ok(())
        }
        JobCommand::Logs {
            job_id,
            role,
            party_id,
            task_name,
            api,
        } => {
            let mut q: Vec<(&str, &str)> = vec![("job_id", &job_id)];
            if let Some(r) = &role {
                q.push(("role", r));
            }
            if let Some(p) = &party_id {
                q.push(("party_id", p));
            }
            if let Some(t) = &task_name {
                q.push(("task_name", t));
            }
            let client = Client::for_api(&api);
            if let Some(t) = task_name.as_deref().filter(|t| *t != "schedule") {
                let tasks = client.get("/job/task/query", &[("job_id", &job_id)])?;
                let mut names: Vec<String> = tasks["data"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .map(|t| cell(&t["task_name"]))
                    .collect();
                names.sort();
                names.dedup();
                if !names.iter().any(|n| n == t) {
                    bail!(
                        "job {job_id} has no task {t:?}; its tasks: {} (and `schedule`, the \
                         scheduler's log)",
                        names.join(", ")
                    );
                }
            }
            let v = client.get("/log/query", &q)?;
            let lines = in_time_order(v["data"].as_array().cloned().unwrap_or_default());
            if api.json {
                print_json(&Value::Array(lines));
            } else {
                for l in &lines {
                    println!("{}", cell(&l["content"]));
                }
            }
            Ok(())
        }
        JobCommand::Stop {
            job_id,
            no_wait,
            api,
        } => {
            let client = Client::for_api(&api);
            let v = client.post("/job/stop", &json!({"job_id": job_id}))?;
            if no_wait {
                if api.json {
                    print_json(&v)
                } else {
                    println!("job {job_id}: stop requested")
                }
                return Ok(());
            }
            // The node ends the job's tasks asynchronously; until they have ended the job is
            // still running and cannot be rerun.
            let job = client.wait_job(&job_id, STOP_WAIT, true).with_context(|| {
                format!(
                    "job {job_id}: stop requested, but the job has not ended within {} s; \
                         see `fate job query -j {job_id}`",
                    STOP_WAIT.as_secs()
                )
            })?;
            if api.json {
                print_json(&json!({"job_id": job_id, "status": job["status"]}))
            } else {
                println!("job {job_id}: stopped ({})", cell(&job["status"]))
            }
            Ok(())
        }
        JobCommand::Rerun { job_id, api } => {
            let v = Client::for_api(&api).post("/job/rerun", &json!({"job_id": job_id}))?;
            if api.json {
                print_json(&v)
            } else {
                println!("job {job_id}: rerun started")
            }
            Ok(())
        }
    }
}

pub fn table(cmd: TableCommand) -> Result<()> {
    match cmd {
        TableCommand::Query {
            namespace,
            name,
            api,
        } => {
            let v = Client::for_api(&api).get(
                "/table/query",
                &[("namespace", &namespace), ("name", &name)],
            )?;
            let d = &v["data"];
            if api.json {
                print_json(d);
            } else {
                crate::output::table(
                    &[
                        "namespace",
                        "name",
                        "count",
                        "partitions",
                        "engine",
                        "features",
                    ],
                    &[vec![
                        cell(&d["namespace"]),
                        cell(&d["name"]),
                        cell(&d["count"]),
                        cell(&d["partitions"]),
                        cell(&d["engine"]),
                        d["meta"]["feature_names"]
                            .as_array()
                            .map(|a| a.len().to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]],
                );
            }
            Ok(())
        }
        TableCommand::Delete {
            namespace,
            name,
            api,
        } => {
            let v = Client::for_api(&api).post(
                "/table/delete",
                &json!({"namespace": namespace, "name": name}),
            )?;
            if api.json {
                print_json(&v)
            } else {
                println!("deleted table {namespace}.{name}")
            }
            Ok(())
        }
    }
}
