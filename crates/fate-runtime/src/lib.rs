//! fate-runtime: what a component sees of its party while it runs, and the component registry.
//!
//! A component gets a [`Ctx`]: its job and task ids, its own party and the task's parties, the
//! computing engine (tables), its federation session, its parameters, its resolved inputs and an
//! [`Outputs`] sink for data, models and metrics. Components are synchronous, CPU-bound code:
//! the scheduler runs each party's component on a blocking thread.
//!
//! Architecture invariants:
//! - This crate and every component name no concrete backend: they see `Computing`,
//!   `Federation` (over any `Transport`) and the `Outputs` trait, never SQL, HTTP or gRPC.
//! - Components never touch the metadata store; the scheduler persists what they record in
//!   `Outputs` after the task ends, so a failed task leaves no half-written metadata.

pub mod ctx;
pub mod data;
pub mod fault;
pub mod fedtable;
pub mod files;
pub mod registry;
/// The in-process multi-party harness of component tests (feature `testing`, never in release
/// builds).
#[cfg(feature = "testing")]
pub mod testing;

pub use ctx::{
    Catalog, Ctx, EmptyCatalog, InputArtifact, LogLevel, OutputData, Outputs, RecordedOutputs,
    TableInfo, TaskLog,
};
pub use data::{DataFrame, Row, Schema};
pub use files::{DataRoots, FileError, FileErrorKind};
pub use registry::{Component, ComponentError, Registry};
