//! `fate serving load|bind|rollback|list`: publishing trained models for online inference at a
//! guest's node (FATE 1.x's `flow model load` / `flow model bind`; issue 15). Inference itself
//! is FATE-Serving's HTTP API on the node (`/federation/v1/inference`).

use crate::ApiArgs;
use crate::client::Client;
use crate::output::{cell, table, time_cell};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum ServingCommand {
    /// Load a finished training job's model at this node (the guest's part; each host of the
    /// job loads its own part, with its features from its side of the training data).
    Load {
        /// The model id (the training job's `model_id`, by default its job id).
        #[arg(long)]
        model_id: String,
        /// The model version (the training job's `model_version`, by default 0).
        #[arg(long, default_value = "0")]
        model_version: String,
        /// The task whose model to load (needed when the job trained several models).
        #[arg(long)]
        task_name: Option<String>,
        /// The party at this node whose model to load (default: the node's first party).
        #[arg(long)]
        party_id: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Point a service id at a loaded model; the model it served before is kept for rollback.
    Bind {
        /// The service id inference requests name (`head.serviceId`).
        #[arg(long)]
        service_id: String,
        /// The loaded model's id.
        #[arg(long)]
        model_id: String,
        /// The loaded model's version.
        #[arg(long, default_value = "0")]
        model_version: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Serve a service's previous model again.
    Rollback {
        /// The service id.
        #[arg(long)]
        service_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The node's services and loaded models.
    List {
        /// Only this service.
        #[arg(long)]
        service_id: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn model_rows(models: &[Value]) -> Vec<Vec<String>> {
    models
        .iter()
        .map(|m| {
            vec![
                cell(&m["model_id"]),
                cell(&m["model_version"]),
                cell(&m["role"]),
                cell(&m["party_id"]),
                cell(&m["task_name"]),
                cell(&m["features"]),
                m["hosts"]
                    .as_array()
                    .map(|h| h.iter().map(cell).collect::<Vec<_>>().join(","))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "-".into()),
                cell(&m["feature_table"]),
                time_cell(&m["loaded_at"]),
            ]
        })
        .collect()
}

const MODEL_HEADER: &[&str] = &[
    "model_id",
    "model_version",
    "role",
    "party_id",
    "task",
    "features",
    "hosts",
    "feature_table",
    "loaded",
];

pub fn run(cmd: ServingCommand) -> Result<()> {
    match cmd {
        ServingCommand::Load {
            model_id,
            model_version,
            task_name,
            party_id,
            api,
        } => {
            let v = Client::for_api(&api).post(
                "/serving/model/load",
                &json!({"model_id": model_id, "model_version": model_version,
                    "task_name": task_name, "party_id": party_id}),
            )?;
            let d = &v["data"];
            if api.json {
                print_json(d);
            } else {
                let mut rows = model_rows(std::slice::from_ref(d));
                rows.extend(model_rows(
                    d["host_parts"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                ));
                table(MODEL_HEADER, &rows);
            }
            Ok(())
        }
        ServingCommand::Bind {
            service_id,
            model_id,
            model_version,
            api,
        } => {
            let v = Client::for_api(&api).post(
                "/serving/model/bind",
                &json!({"service_id": service_id, "model_id": model_id, "model_version": model_version}),
            )?;
            let d = &v["data"];
            if api.json {
                print_json(d);
            } else {
                table(
                    &[
                        "service_id",
                        "model_id",
                        "model_version",
                        "previous_version",
                    ],
                    &[vec![
                        cell(&d["service_id"]),
                        cell(&d["model_id"]),
                        cell(&d["model_version"]),
                        cell(&d["previous_version"]),
                    ]],
                );
            }
            Ok(())
        }
        ServingCommand::Rollback { service_id, api } => {
            let v = Client::for_api(&api).post(
                "/serving/model/rollback",
                &json!({"service_id": service_id}),
            )?;
            let d = &v["data"];
            if api.json {
                print_json(d);
            } else {
                table(
                    &[
                        "service_id",
                        "model_id",
                        "model_version",
                        "rolled_back_from",
                    ],
                    &[vec![
                        cell(&d["service_id"]),
                        cell(&d["model_id"]),
                        cell(&d["model_version"]),
                        cell(&d["rolled_back_from"]),
                    ]],
                );
            }
            Ok(())
        }
        ServingCommand::List { service_id, api } => {
            let v = Client::for_api(&api)
                .post("/serving/service/query", &json!({"service_id": service_id}))?;
            let d = &v["data"];
            if api.json {
                print_json(d);
            } else {
                let services: Vec<Vec<String>> = d["services"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        vec![
                            cell(&s["service_id"]),
                            cell(&s["model_id"]),
                            cell(&s["model_version"]),
                            s["previous_versions"]
                                .as_array()
                                .map(|p| p.iter().map(cell).collect::<Vec<_>>().join(","))
                                .filter(|s| !s.is_empty())
                                .unwrap_or_else(|| "-".into()),
                            time_cell(&s["bound_at"]),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "service_id",
                        "model_id",
                        "model_version",
                        "previous",
                        "bound",
                    ],
                    &services,
                );
                println!();
                table(
                    MODEL_HEADER,
                    &model_rows(
                        d["models"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                    ),
                );
            }
            Ok(())
        }
    }
}
