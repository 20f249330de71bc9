//! fate-dag: job definitions in, one validated plan out.
//!
//! A FATE user submits a job as a 2.x DAG (YAML for `flow job submit`, JSON `{dag_schema}` for
//! `POST /v2/job/submit`) or as a 1.x DSL v2 + runtime conf. This crate turns either into a
//! [`JobPlan`]: the job's parties, initiator and scheduler, and every task with the parties that
//! run it, each party's merged parameters, the artifacts each party reads and a run order.
//!
//! * [`parse_dag`]: text -> [`DagSchema`] (fate-spec §3.3), with line/column on parse errors.
//! * [`dsl_to_dag`]: 1.x DSL + conf -> the equivalent [`DagSchema`] (fate-spec §3.2).
//! * [`plan()`]: [`DagSchema`] + component declarations -> [`JobPlan`], or the first
//!   [`PlanError`] found.
//!
//! Invariants:
//! * No IO, no async, no global state; the component registry is passed in, so this crate does
//!   not depend on the runtime that implements components.
//! * Bad input never panics: every problem is a [`PlanError`] naming the task and the dotted
//!   path of the offending field (`dag.tasks.lr_0.component_ref`).
//! * Planning is deterministic: the same definition gives the same plan (maps are ordered,
//!   task order is topological with ties broken by name) and the same first error.
//! * A [`JobPlan`] only names parties of the job, and every task party has every required
//!   parameter and required input of its component.

pub mod engines;
pub mod error;
pub mod legacy;
pub mod parse;
pub mod plan;
pub mod spec;

pub use engines::{
    ComputingEngine, EngineSettings, FederationEngine, Setting, SparkRun, StorageEngine,
};
pub use error::{PlanError, PlanErrorKind};
pub use legacy::dsl_to_dag;
pub use parse::{MAX_DAG_DEPTH, MAX_DAG_ITEMS, MAX_DAG_TEXT_BYTES, parse_dag};
pub use plan::{InputPlan, InputSource, JobPlan, TaskPlan, plan};
pub use spec::{
    ArtifactRef, DagSchema, DagSpec, InputSpec, JobConfSpec, OneOrMany, PartySpec, PartyTaskParams,
    PartyTaskSpec, TaskInputs, TaskSpec,
};
