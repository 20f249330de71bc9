//! fate-scheduler: runs jobs. A submitted DAG is planned (`fate-dag`), recorded in the metadata
//! store with FATE's job and task statuses, and executed task by task in dependency order; each
//! party of a task runs its component on a blocking thread with its own [`fate_runtime::Ctx`].
//!
//! Architecture invariants:
//! - The scheduler is the only writer of job, task and output metadata; components only record
//!   outputs in their `Ctx`, persisted here once the task has ended.
//! - Status changes go through `MetaStore::set_*_status_checked`, so every transition is one
//!   FATE allows (fate-spec §3.1).
//! - It knows the federation only as `Arc<dyn Transport>`: the binary chooses the backend.
//! - A table's metadata row is its commit point, written after its data; at start, data
//!   without a row and rows without data are removed (`lifecycle`).

mod clean;
pub mod engines;
mod job;
mod lifecycle;
mod logs;
pub mod site;
mod traffic;

pub use engines::{EngineRefusal, JobEngines, SingleEngine};
pub use job::{Scheduler, SchedulerConfig, SchedulerError, Submitted};
pub use lifecycle::{RESTART_REASON, Recovery, SHUTDOWN_REASON};
pub use logs::LogLine;
pub use site::{PartnerError, Partners, Site};
pub use traffic::TrafficEntry;
