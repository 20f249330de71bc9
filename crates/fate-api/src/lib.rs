//! fate-api: FATE-Flow 2.x's REST API (fate-spec §3.4) over a [`fate_scheduler::Scheduler`].
//!
//! Every response is FATE's envelope `{code, message, data, job_id}` with FATE's codes, also for
//! malformed bodies and unknown endpoints, so FATE's client and board always get an answer they
//! can read.
//!
//! Architecture invariant: this is the only crate that knows HTTP and the REST DTOs.

pub mod apps;
pub mod auth;
pub mod board;
mod envelope;
mod partner;
mod routes;
pub mod serving;

pub use auth::ClientAuth;
pub use board::{Board, BoardConfig};
pub use envelope::Envelope;
pub use partner::{PartnerCaller, partner_router};
pub use routes::{ApiState, MAX_DOWNLOAD_ROWS, router, sweep_uploads};
pub use serving::Serving;

/// Reads a model archive as `POST /v2/model/import` does, without storing anything, and
/// returns the number of models it holds, or why `/model/import` would refuse it. This is the
/// handler's own parser (pure: bytes in, verdict out), exposed for the `model_import` fuzz
/// target.
pub fn read_model_archive(bytes: &[u8]) -> Result<usize, String> {
    routes::read_model_archive(bytes)
}
