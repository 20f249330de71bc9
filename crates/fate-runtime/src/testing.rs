//! Runs one component at several parties in this process, without a scheduler or a store:
//! the harness algorithm tests and privacy (transcript) tests use. Each party runs on its own
//! thread with its own `Ctx`; all parties share one in-process federation hub and one
//! `Computing` (tables saved by one party are visible to the next task, as on a standalone node).

use crate::ctx::{Ctx, EmptyCatalog, InputArtifact, OutputData, RecordedOutputs, TaskLog};
use crate::data::{DataFrame, Schema};
use crate::registry::{Component, ComponentError};
use fate_computing::Computing;
use fate_federation::local::LocalTransport;
use fate_federation::{CancelToken, Federation, FederationConfig, Observer, Transport};
use fate_types::Party;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One party's part of a task run.
#[derive(Clone)]
pub struct PartyRun {
    pub party: Party,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
}

impl PartyRun {
    pub fn new(party: Party, params: serde_json::Value) -> Self {
        let params = match params {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        PartyRun {
            party,
            params,
            inputs: BTreeMap::new(),
        }
    }

    pub fn input(mut self, key: &str, artifact: InputArtifact) -> Self {
        self.inputs
            .entry(key.to_string())
            .or_default()
            .push(artifact);
        self
    }
}

/// What one party's run returned.
pub struct PartyResult {
    pub party: Party,
    pub result: Result<(), ComponentError>,
    pub outputs: RecordedOutputs,
}

impl PartyResult {
    /// The data output `key` as an input artifact for a downstream task.
    pub fn data_artifact(&self, key: &str) -> Option<InputArtifact> {
        self.outputs
            .data
            .iter()
            .find(|d| d.key == key)
            .map(|d: &OutputData| InputArtifact::Data {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                schema: d.schema.clone(),
                source_task: None,
            })
    }

    /// The model output `key` as an input artifact for a downstream (predict) task.
    pub fn model_artifact(&self, key: &str) -> Option<InputArtifact> {
        self.outputs
            .models
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, m)| InputArtifact::Model(m.clone()))
    }

    pub fn metric(&self, name: &str) -> Option<&serde_json::Value> {
        self.outputs
            .metrics
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, d)| d)
    }
}

/// A set of in-process parties.
pub struct Harness {
    pub computing: Computing,
    transport: Arc<dyn Transport>,
    pub federation: FederationConfig,
    observer: Option<Arc<dyn Observer>>,
    runs: std::sync::atomic::AtomicU32,
    /// Stage given to the next runs (`train` by default; set `predict` for predict runs).
    pub stage: String,
}

impl Harness {
    pub fn new(computing: Computing) -> Self {
        Harness {
            computing,
            transport: LocalTransport::new(),
            federation: FederationConfig {
                timeout: Duration::from_secs(120),
                ..FederationConfig::default()
            },
            observer: None,
            runs: Default::default(),
            stage: "train".into(),
        }
    }

    /// Records every message of every later run (e.g. a `fate_federation::testing::Transcript`).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Stores `df` as a named table and returns it as an input artifact.
    pub fn table(&self, namespace: &str, name: &str, df: &DataFrame) -> InputArtifact {
        df.table
            .save(namespace, name, true)
            .expect("the harness's computing saves in memory or on disk");
        InputArtifact::Data {
            namespace: namespace.into(),
            name: name.into(),
            schema: df.schema.clone(),
            source_task: None,
        }
    }

    /// Runs `component` at every party of `runs` at once and waits for all of them. When a party
    /// fails, the others' waits are canceled, as the scheduler does.
    pub fn run(
        &self,
        task_name: &str,
        component: &dyn Component,
        runs: Vec<PartyRun>,
    ) -> Vec<PartyResult> {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let job_id = format!("harness{n}");
        let cancel = CancelToken::new();
        let parties: Vec<Party> = {
            let mut p: Vec<Party> = runs.iter().map(|r| r.party.clone()).collect();
            p.sort();
            p
        };
        std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .into_iter()
                .map(|run| {
                    let mut federation = Federation::new(
                        self.transport.clone(),
                        fate_types::federation_session_id(&job_id, task_name, 0),
                        run.party.clone(),
                        self.federation.clone(),
                        cancel.clone(),
                    );
                    if let Some(o) = &self.observer {
                        federation = federation.with_observer(o.clone());
                    }
                    let ctx = Ctx {
                        job_id: job_id.clone(),
                        task_name: task_name.to_string(),
                        task_version: 0,
                        stage: self.stage.clone(),
                        local: run.party.clone(),
                        parties: parties.clone(),
                        computing: self.computing.clone(),
                        federation,
                        params: run.params,
                        inputs: run.inputs,
                        outputs: Default::default(),
                        log: TaskLog::new(&job_id, &run.party, task_name, None)
                            .expect("no file to open"),
                        cancel: cancel.clone(),
                        catalog: Arc::new(EmptyCatalog),
                        files: crate::files::DataRoots::none(),
                    };
                    let cancel = cancel.clone();
                    scope.spawn(move || {
                        let result = component.run(&ctx);
                        if result.is_err() {
                            cancel.cancel();
                        }
                        PartyResult {
                            party: ctx.local.clone(),
                            result,
                            outputs: ctx.outputs.take(),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a party's thread panicked"))
                .collect()
        })
    }
}

/// A dataframe from rows `(sample_id, match_id, label, features)`, for tests.
pub fn frame(
    computing: &Computing,
    feature_names: &[&str],
    label: bool,
    rows: Vec<(String, crate::Row)>,
    partitions: usize,
) -> DataFrame {
    DataFrame {
        schema: Schema {
            sample_id_name: "sample_id".into(),
            match_id_name: "id".into(),
            label_name: label.then(|| "y".to_string()),
            weight_name: None,
            feature_names: feature_names.iter().map(|s| s.to_string()).collect(),
            label_type: "int32".into(),
            dtype: "float64".into(),
            dataset_type: None,
        },
        table: computing.parallelize(rows, partitions),
    }
}
