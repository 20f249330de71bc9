//! Vocabulary shared by every fate-rs crate: parties and roles, job and task ids, statuses and
//! their legal transitions, FATE's REST error codes and what a component declares about itself.
//!
//! Architecture invariant: this crate does no IO, has no async and depends only on serde-level
//! crates, so every other crate can depend on it without cost.

pub mod broker_run;
pub mod component;
pub mod error;
pub mod ids;
pub mod party;
pub mod status;

pub use broker_run::{BrokerCompression, BrokerRun};
pub use error::RetCode;
pub use ids::{
    IdError, JobIdGenerator, check_job_id, check_name, check_path_id, federation_session_id,
};
pub use party::{Party, PartyId, Role};
pub use status::{JobStatus, TaskStatus};
