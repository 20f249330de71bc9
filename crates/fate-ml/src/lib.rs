//! fate-ml: the predict functions of trained models, pure (data in, scores out).
//!
//! The batch predict stage of a job (fate-components) and online serving (fate-api's
//! `serving`) call these same functions on the same typed model, so online and batch scores
//! cannot drift apart (issue 15).
//!
//! Architecture invariant (tidy): no IO and no async; this crate knows nothing of tables,
//! federation, HTTP or storage. It depends only on serde_json (models are FATE's JSON).

pub mod lr;
