//! Which engines run a party of a job. A job may say, per party, which computing, storage and
//! federation engine it wants and how Spark should run it ([`fate_dag::engines`]); the node
//! that hosts the party checks that it can honour that when the job is created there (at
//! submit for the initiator's parties, at `/v2/partner/job/create` for the others) and opens
//! the computing the party's tasks run on when the job starts.
//!
//! The scheduler checks what it knows itself: the storage engine against the node's table
//! store (one per node: every engine reads and writes the same store, so a table written on
//! one engine reads back equal on another) and the federation engine against how the node
//! federates. The computing engine and the Spark run settings are the binary's business
//! ([`JobEngines`]), since only it knows the concrete engines.

use crate::job::{Scheduler, SchedulerError};
use fate_computing::Computing;
use fate_dag::{
    ComputingEngine, EngineSettings, FederationEngine, JobPlan, PlanError, PlanErrorKind,
    StorageEngine,
};
use fate_types::Party;
use std::sync::Arc;

/// A setting this node cannot honour: the field it came from and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRefusal {
    pub field: String,
    pub message: String,
}

/// How a node runs its parties on the engines jobs ask for. Both methods block (they may talk
/// to a Spark Connect server); the scheduler calls them on a blocking thread.
pub trait JobEngines: Send + Sync + 'static {
    /// Whether this node can run `party` with `settings`; the first setting it cannot honour
    /// otherwise. Storage and federation engines are checked by the scheduler before this.
    fn check(&self, party: &Party, settings: &EngineSettings) -> Result<(), EngineRefusal>;

    /// The computing `party`'s tasks of job `job_id` run on. It lives as long as the job's
    /// run holds it (a per-job Spark session ends when the job ends).
    fn open(
        &self,
        job_id: &str,
        party: &Party,
        settings: &EngineSettings,
    ) -> Result<Computing, String>;
}

/// A node with one computing for every job: a job may ask for that engine only, and for no
/// Spark run settings unless it is Spark (what a scheduler built without [`JobEngines`] has).
pub struct SingleEngine(pub Computing);

impl JobEngines for SingleEngine {
    fn check(&self, _party: &Party, settings: &EngineSettings) -> Result<(), EngineRefusal> {
        let name = self.0.engine_name();
        if let Some(c) = &settings.computing_engine {
            let has = match c.value {
                ComputingEngine::Standalone => name == "local",
                ComputingEngine::Spark => name == "spark",
            };
            if !has {
                return Err(EngineRefusal {
                    field: c.field.clone(),
                    message: format!(
                        "this node computes on its {name} engine only, not {}",
                        computing_name(c.value)
                    ),
                });
            }
        }
        Ok(())
    }

    fn open(&self, _: &str, _: &Party, _: &EngineSettings) -> Result<Computing, String> {
        Ok(self.0.clone())
    }
}

/// FATE's name of a computing engine.
pub fn computing_name(e: ComputingEngine) -> &'static str {
    match e {
        ComputingEngine::Standalone => "STANDALONE",
        ComputingEngine::Spark => "SPARK",
    }
}

fn storage_name(e: StorageEngine) -> &'static str {
    match e {
        StorageEngine::Standalone => "STANDALONE",
        StorageEngine::Localfs => "LOCALFS",
        StorageEngine::Hdfs => "HDFS",
        StorageEngine::S3 => "S3",
    }
}

/// The storage engine of a table store's `engine()` name.
fn store_kind(engine: &str) -> Option<StorageEngine> {
    match engine {
        "standalone" => Some(StorageEngine::Standalone),
        "file" => Some(StorageEngine::Localfs),
        "hdfs" => Some(StorageEngine::Hdfs),
        "s3" => Some(StorageEngine::S3),
        _ => None,
    }
}

/// The error of a refused setting: the field, what is wrong, and the party it is for.
pub(crate) fn refusal_error(party: &Party, r: EngineRefusal) -> SchedulerError {
    SchedulerError::Plan(PlanError::job(
        PlanErrorKind::BadValue,
        r.field,
        format!("{} (party {} {})", r.message, party.role, party.party_id),
    ))
}

impl Scheduler {
    /// The storage and federation checks this scheduler makes itself.
    fn check_own(&self, settings: &EngineSettings) -> Result<(), EngineRefusal> {
        if let Some(s) = &settings.storage_engine {
            let store = self.inner.computing.store();
            if store_kind(store.engine()) != Some(s.value) {
                return Err(EngineRefusal {
                    field: s.field.clone(),
                    message: format!(
                        "this node keeps its tables in its {} store, not {} (a node has one \
                         table store, chosen by its storage setting)",
                        store.engine(),
                        storage_name(s.value)
                    ),
                });
            }
        }
        if let Some(f) = &settings.federation_engine {
            let site = self.inner.config.site.is_some();
            // The node's data plane (node.yaml `federation`): its site router (gRPC), or its
            // RabbitMQ or Pulsar brokers.
            let transport = self.inner.transport.name();
            let broker = match transport {
                "rabbitmq" => Some(("RabbitMQ", "RABBITMQ")),
                "pulsar" => Some(("Pulsar", "PULSAR")),
                _ => None,
            };
            let ok = match f.value {
                FederationEngine::Standalone => !site,
                FederationEngine::Rollsite | FederationEngine::Osx => site && broker.is_none(),
                FederationEngine::Rabbitmq => site && transport == "rabbitmq",
                FederationEngine::Pulsar => site && transport == "pulsar",
            };
            if !ok {
                return Err(EngineRefusal {
                    field: f.field.clone(),
                    message: match broker {
                        _ if !site => "this node runs standalone (every party in one process): \
                                       use STANDALONE"
                            .into(),
                        Some((product, engine)) => format!(
                            "this node federates its data through {product} (node.yaml \
                             `federation: {transport}`): use {engine}"
                        ),
                        None => "this node federates with other nodes through its site router \
                                 (EGGROLL/rollsite or OSX); RABBITMQ and PULSAR need node.yaml \
                                 `federation: rabbitmq` or `federation: pulsar`"
                            .into(),
                    },
                });
            }
        }
        Ok(())
    }

    /// Checks the engine settings of every party of `plan` this node hosts; the error names
    /// the first party and field this node cannot honour.
    pub(crate) async fn check_engines(&self, plan: &JobPlan) -> Result<(), SchedulerError> {
        for party in plan.parties.iter().filter(|p| self.hosts_party(p)) {
            let settings = plan.engines_for(party);
            if settings.is_empty() {
                continue;
            }
            self.check_own(&settings)
                .map_err(|r| refusal_error(party, r))?;
            let engines = self.inner.engines.clone();
            let p = party.clone();
            tokio::task::spawn_blocking(move || engines.check(&p, &settings))
                .await
                .map_err(|e| {
                    SchedulerError::Partner(format!("engine check ended abnormally: {e}"))
                })?
                .map_err(|r| refusal_error(party, r))?;
        }
        Ok(())
    }

    /// The computing each party of `plan` this node hosts runs on, or the first that cannot
    /// be opened (naming the party).
    pub(crate) async fn open_engines(
        &self,
        job_id: &str,
        plan: &JobPlan,
    ) -> Result<std::collections::HashMap<Party, Computing>, String> {
        let mut out = std::collections::HashMap::new();
        for party in plan.parties.iter().filter(|p| self.hosts_party(p)) {
            let settings = plan.engines_for(party);
            let engines: Arc<dyn JobEngines> = self.inner.engines.clone();
            let (j, p) = (job_id.to_string(), party.clone());
            let c = tokio::task::spawn_blocking(move || engines.open(&j, &p, &settings))
                .await
                .unwrap_or_else(|e| Err(format!("engine start ended abnormally: {e}")))
                .map_err(|e| format!("party {party} cannot start its engine: {e}"))?;
            out.insert(party.clone(), c);
        }
        Ok(out)
    }
}

impl std::fmt::Debug for dyn JobEngines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobEngines")
    }
}
